//! A fast GRIP origin, so the origin is never the bottleneck of a proxy benchmark.
//!
//! - `GET /stream/<ch>`: stream hold on `<ch>` (text/plain)
//! - `GET /sse/<ch>`: stream hold on `<ch>` (text/event-stream)
//! - `GET /poll/<ch>`: response hold on `<ch>`, `Grip-Timeout: 120`
//! - `POST /ws/<ch>`: WebSocket-over-HTTP; OPEN is accepted and subscribed to `<ch>`; TEXT and
//!   BINARY events are counted and answered with an empty events body
//! - `GET /plain`: a small 200 (plain HTTP proxying)
//! - `GET /stats`: `{"requests":N,"text_events":M,...}` (WebSocket-over-HTTP counters)

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http::{Chunked, contains_token};

#[derive(Default)]
pub struct Stats {
    /// WebSocket-over-HTTP requests (POST /ws/...).
    pub requests: AtomicU64,
    pub text_events: AtomicU64,
    pub binary_events: AtomicU64,
    pub opens: AtomicU64,
    pub closes: AtomicU64,
    pub disconnects: AtomicU64,
    /// Requests answered with a hold (stream, sse, poll).
    pub holds: AtomicU64,
    pub plain: AtomicU64,
    pub other: AtomicU64,
    pub connections: AtomicU64,
    /// CLOCK_REALTIME (ns) of the last request that carried a TEXT or BINARY event.
    pub last_text_ns: AtomicU64,
    /// Each answer waits this long (set at start; 0: none).
    pub delay_ms: AtomicU64,
}

impl Stats {
    fn json(&self) -> String {
        format!(
            r#"{{"requests":{},"text_events":{},"binary_events":{},"opens":{},"closes":{},"disconnects":{},"holds":{},"plain":{},"other":{},"connections":{},"last_text_ns":{}}}"#,
            self.requests.load(Relaxed),
            self.text_events.load(Relaxed),
            self.binary_events.load(Relaxed),
            self.opens.load(Relaxed),
            self.closes.load(Relaxed),
            self.disconnects.load(Relaxed),
            self.holds.load(Relaxed),
            self.plain.load(Relaxed),
            self.other.load(Relaxed),
            self.connections.load(Relaxed),
            self.last_text_ns.load(Relaxed),
        )
    }
}

pub fn origin_main(listen: SocketAddr, threads: usize, delay_ms: u64) -> Result<(), String> {
    crate::util::raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let l = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("bind {listen}: {e}"))?;
        eprintln!(
            "holdfast-load origin listening on {}",
            l.local_addr().map_err(|e| e.to_string())?
        );
        let stats = Stats::default();
        stats.delay_ms.store(delay_ms, Relaxed);
        serve(l, Arc::new(stats)).await;
        Ok(())
    })
}

pub async fn serve(l: TcpListener, stats: Arc<Stats>) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                stats.connections.fetch_add(1, Relaxed);
                tokio::spawn(conn(s, stats.clone()));
            }
            Err(e) => {
                eprintln!("origin accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    body: &'a [u8],
}

async fn conn(mut s: TcpStream, stats: Arc<Stats>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(4 * 1024);
    let mut dechunked = Vec::new();
    loop {
        let mut start = 0;
        let mut close = false;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let hlen = match req.parse(&buf[start..]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    out.extend_from_slice(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    close = true;
                    break;
                }
            };
            let mut length = 0usize;
            let mut chunked = false;
            let mut keep_alive = req.version == Some(1);
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = contains_token(h.value, b"chunked");
                } else if h.name.eq_ignore_ascii_case("connection") {
                    if contains_token(h.value, b"close") {
                        keep_alive = false;
                    } else if contains_token(h.value, b"keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            let body_at = start + hlen;
            let (body, used): (&[u8], usize) = if chunked {
                dechunked.clear();
                let mut c = Chunked::default();
                match c.feed(&buf[body_at..], &mut |p| dechunked.extend_from_slice(p)) {
                    Ok((n, true)) => (&dechunked[..], n),
                    Ok((_, false)) => break,
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            } else {
                if buf.len() - body_at < length {
                    break;
                }
                (&buf[body_at..body_at + length], length)
            };
            let r = Req {
                method: req.method.unwrap_or(""),
                path: req.path.unwrap_or("/"),
                body,
            };
            handle(&r, &mut out, &stats);
            start = body_at + used;
            if !keep_alive {
                close = true;
                break;
            }
        }
        if !out.is_empty() {
            let delay = stats.delay_ms.load(Relaxed);
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
        buf.drain(..start);
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.len() > 4 * 1024 * 1024 {
            return;
        }
    }
}

fn respond(out: &mut Vec<u8>, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut h = String::with_capacity(256);
    let _ = write!(h, "HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        let _ = write!(h, "{k}: {v}\r\n");
    }
    let _ = write!(h, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
}

fn channel_of<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let p = path.split('?').next().unwrap_or(path);
    let ch = p.strip_prefix(prefix)?;
    if ch.is_empty() || ch.contains('/') {
        None
    } else {
        Some(ch)
    }
}

fn handle(r: &Req<'_>, out: &mut Vec<u8>, stats: &Stats) {
    let path = r.path;
    if r.method == "GET" {
        if let Some(ch) = channel_of(path, "/stream/") {
            stats.holds.fetch_add(1, Relaxed);
            return respond(
                out,
                "200 OK",
                &[
                    ("Content-Type", "text/plain"),
                    ("Grip-Hold", "stream"),
                    ("Grip-Channel", ch),
                ],
                b"stream open\n",
            );
        }
        if let Some(ch) = channel_of(path, "/sse/") {
            stats.holds.fetch_add(1, Relaxed);
            return respond(
                out,
                "200 OK",
                &[
                    ("Content-Type", "text/event-stream"),
                    ("Cache-Control", "no-cache"),
                    ("Grip-Hold", "stream"),
                    ("Grip-Channel", ch),
                ],
                b": open\n\n",
            );
        }
        if let Some(ch) = channel_of(path, "/poll/") {
            stats.holds.fetch_add(1, Relaxed);
            return respond(
                out,
                "200 OK",
                &[
                    ("Content-Type", "text/plain"),
                    ("Grip-Hold", "response"),
                    ("Grip-Channel", ch),
                    ("Grip-Timeout", "120"),
                ],
                b"timeout\n",
            );
        }
        if path == "/plain" || path.starts_with("/plain?") {
            stats.plain.fetch_add(1, Relaxed);
            return respond(
                out,
                "200 OK",
                &[("Content-Type", "text/plain")],
                b"hello from holdfast-load\n",
            );
        }
        if path == "/stats" {
            return respond(
                out,
                "200 OK",
                &[("Content-Type", "application/json")],
                stats.json().as_bytes(),
            );
        }
    }
    if r.method == "POST"
        && let Some(ch) = channel_of(path, "/ws/")
    {
        return ws_over_http(ch, r.body, out, stats);
    }
    stats.other.fetch_add(1, Relaxed);
    respond(
        out,
        "404 Not Found",
        &[("Content-Type", "text/plain")],
        b"not found\n",
    )
}

/// Parse `TYPE[ <hex len>]\r\n[payload\r\n]` events: (type, payload).
/// One WebSocket-over-HTTP event: (type, payload).
pub type Event<'a> = (&'a [u8], &'a [u8]);

pub fn parse_events(mut b: &[u8]) -> Result<Vec<Event<'_>>, &'static str> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let eol = memchr::memmem::find(b, b"\r\n").ok_or("event line without CRLF")?;
        let line = &b[..eol];
        b = &b[eol + 2..];
        let (ty, len) = match memchr::memchr(b' ', line) {
            Some(sp) => {
                let hex = std::str::from_utf8(&line[sp + 1..]).map_err(|_| "bad length")?;
                (
                    &line[..sp],
                    usize::from_str_radix(hex, 16).map_err(|_| "bad length")?,
                )
            }
            None => (line, 0),
        };
        if len > 0 || memchr::memchr(b' ', line).is_some() {
            if b.len() < len + 2 || &b[len..len + 2] != b"\r\n" {
                return Err("truncated event payload");
            }
            v.push((ty, &b[..len]));
            b = &b[len + 2..];
        } else {
            v.push((ty, &b[..0]));
        }
    }
    Ok(v)
}

fn ws_over_http(ch: &str, body: &[u8], out: &mut Vec<u8>, stats: &Stats) {
    stats.requests.fetch_add(1, Relaxed);
    let events = match parse_events(body) {
        Ok(e) => e,
        Err(e) => {
            return respond(
                out,
                "400 Bad Request",
                &[("Content-Type", "text/plain")],
                e.as_bytes(),
            );
        }
    };
    let mut reply = Vec::new();
    let (mut texts, mut bins) = (0u64, 0u64);
    for (ty, _payload) in &events {
        match *ty {
            b"OPEN" => {
                stats.opens.fetch_add(1, Relaxed);
                let ctl = format!(r#"c:{{"type":"subscribe","channel":"{ch}"}}"#);
                let _ = std::io::Write::write_fmt(
                    &mut reply,
                    format_args!("OPEN\r\nTEXT {:x}\r\n{ctl}\r\n", ctl.len()),
                );
            }
            b"TEXT" => texts += 1,
            b"BINARY" => bins += 1,
            b"CLOSE" => {
                stats.closes.fetch_add(1, Relaxed);
                reply.extend_from_slice(b"CLOSE\r\n");
            }
            b"DISCONNECT" => {
                stats.disconnects.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
    if texts > 0 {
        stats.text_events.fetch_add(texts, Relaxed);
    }
    if texts + bins > 0 {
        stats.last_text_ns.fetch_max(crate::util::now_ns(), Relaxed);
    }
    if bins > 0 {
        stats.binary_events.fetch_add(bins, Relaxed);
    }
    respond(
        out,
        "200 OK",
        &[
            ("Content-Type", "application/websocket-events"),
            ("Sec-WebSocket-Extensions", "grip"),
        ],
        &reply,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        let e = parse_events(
            b"OPEN\r\nTEXT 2\r\nhi\r\nTEXT 0\r\n\r\nCLOSE 5\r\n\x03\xe8bye\r\nDISCONNECT\r\n",
        )
        .unwrap();
        let types: Vec<&[u8]> = e.iter().map(|x| x.0).collect();
        assert_eq!(
            types,
            vec![&b"OPEN"[..], b"TEXT", b"TEXT", b"CLOSE", b"DISCONNECT"]
        );
        assert_eq!(e[1].1, b"hi");
        assert_eq!(e[2].1, b"");
        assert!(parse_events(b"TEXT 5\r\nhi\r\n").is_err());
    }

    #[test]
    fn open_reply() {
        let stats = Stats::default();
        let mut out = Vec::new();
        ws_over_http("c7", b"OPEN\r\n", &mut out, &stats);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Sec-WebSocket-Extensions: grip\r\n"));
        assert!(
            s.ends_with("OPEN\r\nTEXT 25\r\nc:{\"type\":\"subscribe\",\"channel\":\"c7\"}\r\n"),
            "{s}"
        );
        let mut out = Vec::new();
        ws_over_http("c7", b"TEXT 2\r\nhi\r\nTEXT 1\r\nx\r\n", &mut out, &stats);
        assert_eq!(stats.text_events.load(Relaxed), 2);
        assert_eq!(stats.requests.load(Relaxed), 2);
    }
}
