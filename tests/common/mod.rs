//! Shared pieces of the end-to-end tests, independent of holdfast's own code: a scripted origin
//! (std `TcpListener`, a thread per connection, HTTP/1.1 keep-alive), a raw HTTP/1.1 client that
//! checks framing strictly, publishing helpers, and a holdfast instance on ephemeral ports.
#![allow(dead_code)]

pub mod binary;
pub mod wsraw;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use holdfast::config::DriverChoice;
use holdfast::{Config, Server};
use serde_json::{Value, json};

/// Every client read gives up after this long: no test hangs on a silent socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often origin threads look at their stop flag while waiting for bytes.
const ORIGIN_POLL: Duration = Duration::from_millis(100);

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Deterministic pseudo-random bytes, for large bodies that must arrive intact.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 parsing (sans-IO pieces, shared by the sync client, the origin and the tokio tests)

/// A request or response head: the start line and the header fields in order.
#[derive(Debug, Clone)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Parses a head from its text, the final blank line included.
    pub fn parse(text: &str) -> io::Result<Head> {
        let mut lines = text
            .strip_suffix("\r\n\r\n")
            .ok_or_else(|| invalid("head does not end with CRLF CRLF"))?
            .split("\r\n");
        let start = lines.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("header line without a colon: {line:?}")))?;
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(invalid(format!("bad header name: {line:?}")));
            }
            headers.push((name.to_string(), value.trim().to_string()));
        }
        Ok(Head { start, headers })
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// Every header of that name, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Header names starting with `prefix` (case-insensitive), e.g. every `Grip-` header.
    pub fn names_starting(&self, prefix: &str) -> Vec<&str> {
        self.headers
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                n.to_ascii_lowercase()
                    .starts_with(&prefix.to_ascii_lowercase())
            })
            .collect()
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// The body framing of a message, refusing ambiguous framing (both headers, differing lengths).
pub fn framing(head: &Head, response_status: Option<u16>) -> io::Result<Framing> {
    let lengths = head.all("content-length");
    let te = head.header("transfer-encoding");
    if te.is_some() && !lengths.is_empty() {
        return Err(invalid("both Content-Length and Transfer-Encoding"));
    }
    if let Some(te) = te {
        return match te.eq_ignore_ascii_case("chunked") {
            true => Ok(Framing::Chunked),
            false => Err(invalid(format!("unexpected Transfer-Encoding: {te}"))),
        };
    }
    if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err(invalid("differing Content-Length headers"));
        }
        let n = first
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {first:?}")))?;
        return Ok(Framing::Length(n));
    }
    Ok(match response_status {
        Some(s) if s < 200 || s == 204 || s == 304 => Framing::None,
        Some(_) => Framing::UntilClose,
        None => Framing::None,
    })
}

/// One step of a chunked body.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Data(Vec<u8>),
    /// The zero-size chunk and its (empty or not) trailer section.
    Last,
    NeedMore,
}

/// Takes one complete chunk off the front of `buf`; strict about the framing.
pub fn take_chunk(buf: &mut Vec<u8>) -> io::Result<Chunk> {
    let Some(line_end) = find(buf, b"\r\n") else {
        if buf.len() > 64 {
            return Err(invalid("chunk size line too long"));
        }
        return Ok(Chunk::NeedMore);
    };
    let line = std::str::from_utf8(&buf[..line_end]).map_err(|_| invalid("chunk line"))?;
    let size_text = line.split(';').next().unwrap_or_default();
    if size_text.is_empty() || !size_text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!("bad chunk size line {line:?}")));
    }
    let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("chunk size overflow"))?;
    let data_start = line_end + 2;
    if size == 0 {
        let rest = &buf[data_start..];
        let end = if rest.starts_with(b"\r\n") {
            data_start + 2
        } else {
            match find(rest, b"\r\n\r\n") {
                Some(i) => data_start + i + 4,
                None => return Ok(Chunk::NeedMore),
            }
        };
        buf.drain(..end);
        return Ok(Chunk::Last);
    }
    if buf.len() < data_start + size + 2 {
        return Ok(Chunk::NeedMore);
    }
    if &buf[data_start + size..data_start + size + 2] != b"\r\n" {
        return Err(invalid("chunk data not followed by CRLF"));
    }
    let data = buf[data_start..data_start + size].to_vec();
    buf.drain(..data_start + size + 2);
    Ok(Chunk::Data(data))
}

// ---------------------------------------------------------------------------------------------
// A buffered blocking connection

/// A TCP stream plus the bytes read from it and not yet parsed.
pub struct Wire {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    /// Origin side: read timeouts are polls of this flag rather than failures.
    stop: Option<Arc<AtomicBool>>,
}

impl Wire {
    fn new(stream: TcpStream, stop: Option<Arc<AtomicBool>>) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
            stop,
        }
    }

    /// Reads more bytes into the buffer; Ok(0) at end of stream.
    pub fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 65536];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) && self.keep_polling() => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn keep_polling(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| !s.load(Ordering::Relaxed))
    }

    fn fill_or_eof(&mut self, what: &str) -> io::Result<()> {
        match self.fill()? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("end of stream while reading {what}"),
            )),
            _ => Ok(()),
        }
    }

    pub fn read_head(&mut self) -> io::Result<Head> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let bytes: Vec<u8> = self.buf.drain(..end + 4).collect();
                let text = String::from_utf8(bytes).map_err(|_| invalid("head is not UTF-8"))?;
                return Head::parse(&text);
            }
            self.fill_or_eof("a head")?;
        }
    }

    pub fn read_exact_n(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill_or_eof("a body")?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One chunk of a chunked body: Some(data), or None after the last chunk.
    pub fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            match take_chunk(&mut self.buf)? {
                Chunk::Data(d) => return Ok(Some(d)),
                Chunk::Last => return Ok(None),
                Chunk::NeedMore => self.fill_or_eof("a chunk")?,
            }
        }
    }

    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    pub fn read_body(&mut self, framing: Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => self.read_exact_n(n),
            Framing::UntilClose => self.read_to_end(),
            Framing::Chunked => {
                let mut body = Vec::new();
                while let Some(d) = self.read_chunk()? {
                    body.extend_from_slice(&d);
                }
                Ok(body)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client side

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub head: Head,
    pub body: Vec<u8>,
    pub framing: Framing,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

fn parse_status(start: &str) -> io::Result<(u16, String)> {
    let rest = start
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| start.strip_prefix("HTTP/1.0 "))
        .ok_or_else(|| invalid(format!("bad status line {start:?}")))?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = code
        .parse()
        .ok()
        .filter(|_| code.len() == 3)
        .ok_or_else(|| invalid(format!("bad status code in {start:?}")))?;
    Ok((status, reason.to_string()))
}

/// A raw HTTP/1.1 client connection; every read is bounded by a timeout.
pub struct Client {
    pub wire: Wire,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            wire: Wire::new(stream, None),
        }
    }

    pub fn set_timeout(&self, t: Duration) {
        self.wire.stream.set_read_timeout(Some(t)).unwrap();
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.wire
            .stream
            .write_all(bytes)
            .expect("write to holdfast");
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send(&request("GET", path, &[], b""));
        self.read_response()
    }

    /// Writes a whole request and reads its response.
    pub fn send_and_read(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read_response()
    }

    pub fn try_read_response(&mut self) -> io::Result<Response> {
        let head = self.wire.read_head()?;
        let (status, reason) = parse_status(&head.start)?;
        let framing = framing(&head, Some(status))?;
        let body = self.wire.read_body(framing)?;
        Ok(Response {
            status,
            reason,
            head,
            body,
            framing,
        })
    }

    pub fn read_response(&mut self) -> Response {
        self.try_read_response()
            .unwrap_or_else(|e| panic!("reading a response from holdfast: {e}"))
    }

    /// Reads only the head of a streamed response (its body is read with `read_chunk`).
    pub fn read_stream_head(&mut self) -> Response {
        let head = self.wire.read_head().expect("stream response head");
        let (status, reason) = parse_status(&head.start).unwrap();
        let framing = framing(&head, Some(status)).unwrap();
        assert_eq!(framing, Framing::Chunked, "stream is not chunked: {head:?}");
        Response {
            status,
            reason,
            head,
            body: Vec::new(),
            framing,
        }
    }

    /// The next chunk of a streamed response; None after the last chunk.
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        self.wire
            .read_chunk()
            .unwrap_or_else(|e| panic!("reading a chunk from holdfast: {e}"))
    }

    /// The next chunk, as text, which must be there.
    pub fn next_text(&mut self) -> String {
        let chunk = self
            .read_chunk()
            .expect("a chunk, not the end of the stream");
        String::from_utf8(chunk).expect("UTF-8 chunk")
    }

    /// Whether bytes arrive (or the stream ends) within `t`; nothing is consumed.
    pub fn has_data_within(&mut self, t: Duration) -> bool {
        if !self.wire.buf.is_empty() {
            return true;
        }
        self.set_timeout(t);
        let got = match self.wire.fill() {
            Ok(_) => true,
            Err(e) if is_timeout(&e) => false,
            Err(_) => true,
        };
        self.set_timeout(IO_TIMEOUT);
        got
    }

    /// Reads until the connection is closed (EOF or reset), failing after `limit`. Returns the
    /// bytes that arrived and how long it took.
    pub fn wait_closed(&mut self, limit: Duration) -> (Vec<u8>, Duration) {
        let start = Instant::now();
        loop {
            let left = limit.checked_sub(start.elapsed()).unwrap_or_else(|| {
                panic!("connection still open after {limit:?}");
            });
            self.set_timeout(left.max(Duration::from_millis(1)));
            match self.wire.fill() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => panic!("connection still open after {limit:?}"),
                Err(_) => break,
            }
        }
        (std::mem::take(&mut self.wire.buf), start.elapsed())
    }
}

/// The bytes of a request with a Host header and, for a body, its Content-Length.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        out.push_str("Host: holdfast.test\r\n");
    }
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

// ---------------------------------------------------------------------------------------------
// The scripted origin

/// A request as the origin received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub head: Head,
    pub body: Vec<u8>,
    /// Which origin connection it came on (0, 1, ...).
    pub conn: usize,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

/// What the origin does with a request.
pub enum Reply {
    /// Write these bytes (a whole response) and wait for the next request.
    Send(Vec<u8>),
    /// Write these bytes, then close (a close-delimited body ends here).
    SendAndClose(Vec<u8>),
    /// Write each piece, pausing `every` between them; close at the end if `close`.
    Drip {
        pieces: Vec<Vec<u8>>,
        every: Duration,
        close: bool,
    },
    /// Never answer: keep the connection open until the peer closes it or the origin stops.
    Hang,
    /// Write these bytes, then reset the connection (RST).
    Reset(Vec<u8>),
}

struct Log {
    requests: Mutex<Vec<Request>>,
    changed: Condvar,
}

/// A test origin on 127.0.0.1, a thread per connection, answering with a handler.
pub struct Origin {
    pub addr: SocketAddr,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

impl Origin {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("origin bind");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log {
            requests: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(handler);
        let (l, s, c) = (log.clone(), stop.clone(), connections.clone());
        let accept = std::thread::Builder::new()
            .name("test-origin".into())
            .spawn(move || accept_loop(listener, handler, l, s, c))
            .unwrap();
        Origin {
            addr,
            log,
            stop,
            connections,
            accept: Some(accept),
        }
    }

    /// An origin that answers every request with the same bytes.
    pub fn fixed(response: Vec<u8>) -> Origin {
        Origin::start(move |_| Reply::Send(response.clone()))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.requests.lock().unwrap().clone()
    }

    /// Waits until `n` requests in all have arrived; returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Request> {
        let guard = self.log.requests.lock().unwrap();
        let (guard, _) = self
            .log
            .changed
            .wait_timeout_while(guard, IO_TIMEOUT, |r| r.len() < n)
            .unwrap();
        assert!(
            guard.len() >= n,
            "origin got {} requests, expected {n}",
            guard.len()
        );
        guard.clone()
    }

    /// The single request the origin received first.
    pub fn first_request(&self) -> Request {
        self.wait_for(1).remove(0)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
) {
    let mut threads = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let index = connections.fetch_add(1, Ordering::SeqCst);
        let (h, l, s) = (handler.clone(), log.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("test-origin-{index}"))
            .stack_size(256 * 1024)
            .spawn(move || serve_origin_conn(stream, index, h, l, s));
        if let Ok(t) = spawned {
            threads.push(t);
        }
        threads.retain(|t| !t.is_finished());
    }
    for t in threads {
        let _ = t.join();
    }
}

fn read_request(wire: &mut Wire, conn: usize) -> io::Result<Request> {
    let head = wire.read_head()?;
    let mut parts = head.start.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let body = wire.read_body(framing(&head, None)?)?;
    Ok(Request {
        method,
        path,
        head,
        body,
        conn,
    })
}

fn serve_origin_conn(
    stream: TcpStream,
    index: usize,
    handler: Handler,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
) {
    let _ = stream.set_read_timeout(Some(ORIGIN_POLL));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut wire = Wire::new(stream, Some(stop.clone()));
    while let Ok(req) = read_request(&mut wire, index) {
        let reply = handler(&req);
        log.requests.lock().unwrap().push(req);
        log.changed.notify_all();
        let stream = &mut wire.stream;
        match reply {
            Reply::Send(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::SendAndClose(bytes) => {
                let _ = stream.write_all(&bytes);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Reply::Drip {
                pieces,
                every,
                close,
            } => {
                for (i, piece) in pieces.iter().enumerate() {
                    if i > 0 {
                        std::thread::sleep(every);
                    }
                    if stream.write_all(piece).is_err() || stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                if close {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            }
            Reply::Hang => {
                while matches!(wire.fill(), Ok(n) if n > 0) {}
                return;
            }
            Reply::Reset(bytes) => {
                let _ = stream.write_all(&bytes);
                // Let the partial response reach the proxy before the reset.
                std::thread::sleep(Duration::from_millis(50));
                let _ = socket2::SockRef::from(&*stream).set_linger(Some(Duration::ZERO));
                return;
            }
        }
    }
}

/// A complete response with Content-Length.
pub fn response(code: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {code} {reason}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub fn ok(body: &[u8]) -> Vec<u8> {
    response(200, "OK", &[("Content-Type", "text/plain")], body)
}

/// The head of a chunked response.
pub fn chunked_head(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A stream hold on `channel` with `body` as the initial content.
pub fn stream_hold(channel: &str, body: &[u8]) -> Vec<u8> {
    let headers = [
        ("Content-Type", "text/plain"),
        ("Grip-Hold", "stream"),
        ("Grip-Channel", channel),
    ];
    response(200, "OK", &headers, body)
}

// ---------------------------------------------------------------------------------------------
// holdfast

/// Which driver the tests run on: `HOLDFAST_TEST_DRIVER=legacy|uring`, default auto.
pub fn driver_from_env() -> DriverChoice {
    match std::env::var("HOLDFAST_TEST_DRIVER").as_deref() {
        Ok("legacy") => DriverChoice::Legacy,
        Ok("uring") => DriverChoice::Uring,
        _ => DriverChoice::Auto,
    }
}

/// A test config: ephemeral ports, two unpinned workers, quick shutdown.
pub fn config(routes: &str) -> Config {
    let mut c = Config::default();
    c.server.listen = vec!["127.0.0.1:0".parse().unwrap()];
    c.publish.listen = "127.0.0.1:0".parse().unwrap();
    c.server.workers = 2;
    c.server.pin_workers = false;
    c.server.driver = driver_from_env();
    c.server.routes = routes.to_string();
    c.server.shutdown_timeout_ms = 1_000;
    c
}

pub fn route_to(origin: &Origin) -> String {
    format!("* 127.0.0.1:{}\n", origin.port())
}

/// A running holdfast; shut down (threads joined) when dropped.
pub struct Proxy {
    server: Option<Server>,
    pub http: SocketAddr,
    pub publish: SocketAddr,
}

impl Proxy {
    pub fn start(config: Config) -> Proxy {
        init_logging();
        let server = Server::start(config).expect("holdfast starts");
        Proxy {
            http: server.http_addrs[0],
            publish: server.publish_addr,
            server: Some(server),
        }
    }

    /// Wraps a server started by the test itself.
    pub fn from_server(server: Server) -> Proxy {
        init_logging();
        Proxy {
            http: server.http_addrs[0],
            publish: server.publish_addr,
            server: Some(server),
        }
    }

    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    /// holdfast in front of `origin`, with `tweak` applied to the test config.
    pub fn with(origin: &Origin, tweak: impl FnOnce(&mut Config)) -> Proxy {
        let mut c = config(&route_to(origin));
        tweak(&mut c);
        Proxy::start(c)
    }

    pub fn to(origin: &Origin) -> Proxy {
        Proxy::with(origin, |_| {})
    }

    pub fn client(&self) -> Client {
        Client::connect(self.http)
    }

    /// Publishes a body of items; it must be accepted.
    pub fn publish(&self, body: &Value) {
        let r = post_publish(self.publish, &[], body.to_string().as_bytes());
        assert_eq!(r.status, 200, "publish refused: {}", r.text());
    }

    /// Opens a stream subscriber on `path` and waits for its initial body (so it is subscribed).
    pub fn subscribe(&self, path: &str, initial: &[u8]) -> Client {
        let mut c = self.client();
        c.send(&request("GET", path, &[], b""));
        let head = c.read_stream_head();
        assert_eq!(head.status, 200);
        assert_eq!(c.read_chunk().as_deref(), Some(initial));
        c
    }

    pub fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// Logs go to the test output when RUST_LOG is set (e.g. `RUST_LOG=holdfast=debug`).
fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing

/// A raw `POST /publish/` with extra headers; the publisher's connection closes after it.
pub fn post_publish(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Response {
    publish_request(addr, "POST", "/publish/", headers, body)
}

pub fn publish_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    if method == "POST" {
        all.push(("Content-Type", "application/json"));
    }
    let mut c = Client::connect(addr);
    c.send(&request(method, path, &all, body));
    c.read_response()
}

pub fn items(list: Vec<Value>) -> Value {
    json!({ "items": list })
}

pub fn stream_item(channel: &str, content: &str) -> Value {
    json!({"channel": channel, "formats": {"http-stream": {"content": content}}})
}

pub fn close_item(channel: &str) -> Value {
    json!({"channel": channel, "formats": {"http-stream": {"action": "close"}}})
}

/// Publishes `body` until the long-poll `client` starts receiving its answer (a long-poll is
/// answered once, so a publish that raced the subscription is simply repeated), then reads it.
pub fn publish_until_answered(proxy: &Proxy, client: &mut Client, body: &Value) -> Response {
    let start = Instant::now();
    loop {
        proxy.publish(body);
        if client.has_data_within(Duration::from_millis(300)) {
            return client.read_response();
        }
        assert!(
            start.elapsed() < IO_TIMEOUT,
            "long-poll never answered by a publish"
        );
    }
}

/// A unique scratch directory for one test.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("holdfast-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// WebSocket: routes, a scripted WebSocket-over-HTTP origin and a tungstenite client

/// Routes sending WebSocket upgrades to `port` over HTTP (and plain HTTP to the same port).
pub fn ws_routes(port: u16) -> String {
    format!("*,proto=ws 127.0.0.1:{port},over_http\n* 127.0.0.1:{port}\n")
}

/// holdfast routing WebSockets over HTTP to `origin`, with `tweak` applied to the test config.
pub fn ws_proxy(origin_port: u16, tweak: impl FnOnce(&mut Config)) -> Proxy {
    let mut c = config(&ws_routes(origin_port));
    tweak(&mut c);
    Proxy::start(c)
}

/// The content type of WebSocket-over-HTTP bodies.
pub const WS_EVENTS: &str = "application/websocket-events";

/// A WebSocket-over-HTTP answer: 200, the events content type, `headers`, then `events`.
pub fn events_response(
    headers: &[(&str, &str)],
    events: &[holdfast::proto::wsoh::Event],
) -> Vec<u8> {
    let mut body = Vec::new();
    for e in events {
        holdfast::proto::wsoh::encode_event(&mut body, e);
    }
    let mut all = vec![("Content-Type", WS_EVENTS)];
    all.extend_from_slice(headers);
    response(200, "OK", &all, &body)
}

/// The events of a request the origin received (it must be a valid events body).
pub fn request_events(req: &Request) -> Vec<holdfast::proto::wsoh::Event> {
    holdfast::proto::wsoh::decode_events(&req.body).unwrap_or_else(|e| {
        panic!(
            "origin got an undecodable events body ({e}): {:?}",
            String::from_utf8_lossy(&req.body)
        )
    })
}

/// `m:` + payload: a message for the client once the grip extension is on.
pub fn prefixed(payload: &[u8]) -> Vec<u8> {
    [b"m:".as_slice(), payload].concat()
}

/// A `c:` control message.
pub fn control(json: &Value) -> holdfast::proto::wsoh::Event {
    holdfast::proto::wsoh::Event::Text(format!("c:{json}").into_bytes())
}

/// What an echoing grip origin answers to `events`: OPEN accepted, TEXT/BINARY echoed with the
/// `m:` prefix, CLOSE echoed, the rest ignored.
pub fn echo_events(events: &[holdfast::proto::wsoh::Event]) -> Vec<holdfast::proto::wsoh::Event> {
    use holdfast::proto::wsoh::Event;
    events
        .iter()
        .filter_map(|e| match e {
            Event::Open => Some(Event::Open),
            Event::Text(t) => Some(Event::Text(prefixed(t))),
            Event::Binary(b) => Some(Event::Binary(prefixed(b))),
            Event::Close { code, reason } => Some(Event::Close {
                code: *code,
                reason: reason.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// An origin that accepts every WebSocket with the grip extension and echoes every message.
pub fn echo_origin() -> Origin {
    Origin::start(|req| {
        let out = echo_events(&request_events(req));
        Reply::Send(events_response(
            &[("Sec-WebSocket-Extensions", "grip")],
            &out,
        ))
    })
}

/// A `ws-message` publish item.
pub fn ws_item(channel: &str, content: &str) -> Value {
    json!({"channel": channel, "formats": {"ws-message": {"content": content}}})
}

/// A TCP stream whose reads and writes are retried on EINTR. A blocking socket call with a
/// timeout is not restarted after a signal-like interruption, and the thread that called
/// `Server::start` gets one (the io_uring probe's ring teardown); tungstenite would report it
/// as a failure.
pub struct Stream(pub TcpStream);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

pub type Ws = tungstenite::WebSocket<Stream>;

/// Opens a WebSocket with tungstenite to `ws://addr{path}`, with extra handshake headers.
pub fn ws_connect_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (Ws, tungstenite::handshake::client::Response) {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (n, v) in headers {
        req.headers_mut().append(
            tungstenite::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to holdfast");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    match tungstenite::client::client(req, Stream(stream)) {
        Ok(pair) => pair,
        Err(e) => panic!("WebSocket handshake with holdfast failed: {e}"),
    }
}

pub fn ws_connect(addr: SocketAddr, path: &str) -> Ws {
    ws_connect_with(addr, path, &[]).0
}

/// The next message of any kind (pings and pongs included), failing after `limit`.
pub fn ws_next(ws: &mut Ws, limit: Duration) -> tungstenite::Message {
    ws.get_ref().0.set_read_timeout(Some(limit)).unwrap();
    let got = ws.read();
    ws.get_ref().0.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    match got {
        Ok(m) => m,
        Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
            panic!("no WebSocket message within {limit:?}")
        }
        Err(e) => panic!("reading a WebSocket message: {e}"),
    }
}

/// The next text or binary message (pings and pongs skipped); a close frame fails the test.
pub fn ws_recv(ws: &mut Ws) -> tungstenite::Message {
    let start = Instant::now();
    loop {
        let left = IO_TIMEOUT
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("no WebSocket message within {IO_TIMEOUT:?}"));
        match ws_next(ws, left.max(Duration::from_millis(1))) {
            m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_)) => return m,
            tungstenite::Message::Close(f) => panic!("closed while a message was expected: {f:?}"),
            _ => {}
        }
    }
}

/// The next text message, which must be one.
pub fn ws_recv_text(ws: &mut Ws) -> String {
    match ws_recv(ws) {
        tungstenite::Message::Text(t) => t.as_str().to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

pub fn ws_send_text(ws: &mut Ws, text: &str) {
    ws.send(tungstenite::Message::text(text))
        .expect("send to holdfast");
}

/// Reads until holdfast's close frame (messages before it are returned) and gives its code and
/// reason; fails after `limit`.
pub fn ws_expect_close(
    ws: &mut Ws,
    limit: Duration,
) -> (Option<u16>, String, Vec<tungstenite::Message>) {
    let start = Instant::now();
    let mut before = Vec::new();
    loop {
        let left = limit
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("no close frame within {limit:?}; got {before:?}"));
        ws.get_ref()
            .0
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => {
                return match frame {
                    Some(f) => (
                        Some(u16::from(f.code)),
                        f.reason.as_str().to_string(),
                        before,
                    ),
                    None => (None, String::new(), before),
                };
            }
            Ok(m) => before.push(m),
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                panic!("no close frame within {limit:?}; got {before:?}")
            }
            Err(e) => panic!("connection ended without a close frame ({e}); got {before:?}"),
        }
    }
}
