//! The publisher: POSTs stamped items (`seq=<n> ts=<unix nanos>` + filler) to a GRIP publish
//! endpoint over keep-alive connections, paced or as fast as possible, keeping per-channel
//! order (each channel is owned by one connection, which waits for every answer).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};

use crate::client::connect_from;
use crate::http::{Body, head_end, parse_response_head};
use crate::util::{Target, now_ns};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// http-stream content, one line per message
    HttpStream,
    /// ws-message content (a text frame)
    WsMessage,
    /// http-response body (answers a long-poll)
    HttpResponse,
    /// http-stream content framed as an SSE event: `data: ...\n\n`
    Sse,
}

/// A keep-alive HTTP/1.1 client connection (one request at a time).
pub struct HttpConn {
    target: Target,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl HttpConn {
    pub fn new(target: Target) -> HttpConn {
        HttpConn {
            target,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Send one request and read the whole answer: (status, body).
    pub async fn request(&mut self, req: &[u8], wait: Duration) -> Result<(u16, Vec<u8>), String> {
        match timeout(wait, self.request_inner(req)).await {
            Ok(r) => r,
            Err(_) => {
                self.stream = None;
                Err("request timed out".into())
            }
        }
    }

    async fn request_inner(&mut self, req: &[u8]) -> Result<(u16, Vec<u8>), String> {
        for attempt in 0..2 {
            let reused = self.stream.is_some();
            if self.stream.is_none() {
                let s = connect_from(self.target.addr, None)
                    .await
                    .map_err(|e| format!("connect {}: {e}", self.target.addr))?;
                self.stream = Some(s);
                self.buf.clear();
            }
            match self.exchange(req).await {
                Ok(r) => return Ok(r),
                Err((e, nothing_read)) => {
                    self.stream = None;
                    // A stale keep-alive connection: the server saw nothing, send again.
                    if !(reused && nothing_read && attempt == 0) {
                        return Err(e);
                    }
                }
            }
        }
        Err("unreachable".into())
    }

    async fn exchange(&mut self, req: &[u8]) -> Result<(u16, Vec<u8>), (String, bool)> {
        let s = self
            .stream
            .as_mut()
            .ok_or(("not connected".to_string(), true))?;
        s.write_all(req)
            .await
            .map_err(|e| (format!("write: {e}"), true))?;
        let mut head = None;
        let mut body = Body::Done;
        let mut out = Vec::new();
        let mut got_any = false;
        loop {
            if head.is_none()
                && let Some(end) = head_end(&self.buf)
            {
                let h = parse_response_head(&self.buf[..end]).map_err(|e| (e, false))?;
                self.buf.drain(..end);
                body = Body::new(h.framing);
                head = Some(h);
            }
            if let Some(h) = head {
                let (n, done) = body
                    .feed(&self.buf, &mut |p| out.extend_from_slice(p))
                    .map_err(|e| (e.to_string(), false))?;
                self.buf.drain(..n);
                if done {
                    if h.close {
                        self.stream = None;
                    }
                    return Ok((h.status, out));
                }
            }
            let s = self
                .stream
                .as_mut()
                .ok_or(("not connected".to_string(), false))?;
            let n = s
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| (format!("read: {e}"), !got_any))?;
            if n == 0 {
                if let (Some(h), Body::Close) = (head, &body) {
                    self.stream = None;
                    return Ok((h.status, out));
                }
                return Err(("connection closed".into(), !got_any));
            }
            got_any = true;
        }
    }

    pub async fn get(&mut self, wait: Duration) -> Result<(u16, Vec<u8>), String> {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: holdfast-load\r\n\r\n",
            self.target.path, self.target.host
        );
        self.request(req.as_bytes(), wait).await
    }
}

#[derive(Clone, Debug)]
pub struct PubSpec {
    pub target: Target,
    pub channels: Vec<String>,
    /// Messages per channel (seq 0..count).
    pub count: u64,
    /// Items per second over all channels; None = as fast as possible.
    pub rate: Option<f64>,
    /// One round (the next seq on every channel) every this many ms.
    pub interval_ms: Option<u64>,
    pub size: usize,
    pub formats: Vec<Format>,
    pub batch: usize,
    pub conns: usize,
    pub timeout: Duration,
}

#[derive(Serialize, Default, Clone, Debug)]
pub struct PubResult {
    pub items: u64,
    pub posts: u64,
    pub failed_posts: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub secs: f64,
    pub items_per_s: f64,
    pub errors: Vec<String>,
    /// A connection stopped early after repeated transport errors.
    pub gave_up: bool,
}

/// Append one item's JSON.
pub fn push_item(
    body: &mut String,
    channel: &str,
    seq: u64,
    ts: u64,
    size: usize,
    formats: &[Format],
    filler: &str,
) {
    let mut stamp = String::with_capacity(48);
    let _ = write!(stamp, "seq={seq} ts={ts} ");
    let pad = |extra: usize| &filler[..size.saturating_sub(stamp.len() + extra).min(filler.len())];
    let _ = write!(body, r#"{{"channel":"{channel}","formats":{{"#);
    for (i, f) in formats.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let _ = match f {
            Format::HttpStream => {
                write!(body, r#""http-stream":{{"content":"{stamp}{}\n"}}"#, pad(1))
            }
            Format::Sse => write!(
                body,
                r#""http-stream":{{"content":"data: {stamp}{}\n\n"}}"#,
                pad(8)
            ),
            Format::WsMessage => write!(body, r#""ws-message":{{"content":"{stamp}{}"}}"#, pad(0)),
            Format::HttpResponse => write!(
                body,
                r#""http-response":{{"headers":{{"Content-Type":"text/plain"}},"body":"{stamp}{}\n"}}"#,
                pad(1)
            ),
        };
    }
    body.push_str("}}");
}

/// A publish connection stops after this many transport errors (connect, timeout) in a row.
const MAX_CONSECUTIVE_ERRORS: u32 = 3;

struct ConnPlan {
    channels: Vec<String>,
    /// Items per second for this connection.
    rate: Option<f64>,
}

async fn conn_task(spec: Rc<PubSpec>, plan: ConnPlan, t0: Instant, res: Rc<RefCell<PubResult>>) {
    let mut http = HttpConn::new(spec.target.clone());
    let filler = "x".repeat(spec.size);
    let mut body = String::with_capacity(spec.batch * (spec.size + 200) + 32);
    let mut req = Vec::with_capacity(body.capacity() + 256);
    let mut in_batch = 0usize;
    let mut consecutive_errors = 0u32;
    let total = spec.count * plan.channels.len() as u64;
    let mut n = 0u64;
    for seq in 0..spec.count {
        if let Some(iv) = spec.interval_ms {
            sleep_until(t0 + Duration::from_millis(iv * seq)).await;
        }
        for ch in &plan.channels {
            if in_batch == 0 {
                if let Some(r) = plan.rate {
                    sleep_until(t0 + Duration::from_secs_f64(n as f64 / r)).await;
                }
                body.clear();
                body.push_str(r#"{"items":["#);
            } else {
                body.push(',');
            }
            let ts = now_ns();
            push_item(&mut body, ch, seq, ts, spec.size, &spec.formats, &filler);
            {
                let mut r = res.borrow_mut();
                if r.first_ns == 0 || ts < r.first_ns {
                    r.first_ns = ts;
                }
            }
            in_batch += 1;
            n += 1;
            let round_end = spec.interval_ms.is_some() && ch == plan.channels.last().unwrap_or(ch);
            if in_batch >= spec.batch || n == total || round_end {
                body.push_str("]}");
                req.clear();
                let _ = std::io::Write::write_fmt(
                    &mut req,
                    format_args!(
                        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: holdfast-load\r\n\
                         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        spec.target.path,
                        spec.target.host,
                        body.len()
                    ),
                );
                req.extend_from_slice(body.as_bytes());
                let r = http.request(&req, spec.timeout).await;
                let mut res = res.borrow_mut();
                res.posts += 1;
                let transport_error = r.is_err();
                match r {
                    Ok((200, _)) => {
                        res.items += in_batch as u64;
                        consecutive_errors = 0;
                    }
                    Ok((status, b)) => {
                        res.failed_posts += 1;
                        if res.errors.len() < 5 {
                            res.errors.push(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&b[..b.len().min(200)])
                            ));
                        }
                    }
                    Err(e) => {
                        res.failed_posts += 1;
                        if res.errors.len() < 5 {
                            res.errors.push(e);
                        }
                    }
                }
                res.last_ns = res.last_ns.max(now_ns());
                in_batch = 0;
                if transport_error {
                    consecutive_errors += 1;
                    if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                        res.errors.push(format!(
                            "gave up after {MAX_CONSECUTIVE_ERRORS} failed requests in a row"
                        ));
                        res.gave_up = true;
                        return;
                    }
                }
            }
        }
    }
}

pub async fn run_publisher(spec: PubSpec) -> PubResult {
    run_publisher_into(spec, Rc::new(RefCell::new(PubResult::default()))).await
}

/// Like [`run_publisher`], but the running totals live in `res`, so they can be read even if
/// the publisher is cut short.
pub async fn run_publisher_into(spec: PubSpec, res: Rc<RefCell<PubResult>>) -> PubResult {
    let conns = spec.conns.clamp(1, spec.channels.len().max(1));
    let total_channels = spec.channels.len().max(1) as f64;
    let mut plans: Vec<ConnPlan> = (0..conns)
        .map(|_| ConnPlan {
            channels: Vec::new(),
            rate: None,
        })
        .collect();
    for (i, ch) in spec.channels.iter().enumerate() {
        plans[i % conns].channels.push(ch.clone());
    }
    for p in &mut plans {
        p.rate = spec
            .rate
            .map(|r| (r * p.channels.len() as f64 / total_channels).max(1e-3));
    }
    let spec = Rc::new(spec);
    let t0 = Instant::now();
    let handles: Vec<_> = plans
        .into_iter()
        .map(|p| tokio::task::spawn_local(conn_task(spec.clone(), p, t0, res.clone())))
        .collect();
    for h in handles {
        let _ = h.await;
    }
    finish(&res.borrow())
}

pub fn finish(r: &PubResult) -> PubResult {
    let mut r = r.clone();
    r.secs = (r.last_ns.saturating_sub(r.first_ns)) as f64 / 1e9;
    r.items_per_s = if r.secs > 0.0 {
        (r.items as f64 / r.secs).round()
    } else {
        0.0
    };
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes() {
        let filler = "x".repeat(1000);
        for (f, key, extra) in [
            (Format::HttpStream, "content", 0),
            (Format::Sse, "content", 0),
            (Format::WsMessage, "content", 0),
            (Format::HttpResponse, "body", 0),
        ] {
            let mut b = String::new();
            push_item(
                &mut b,
                "c1",
                42,
                1_700_000_000_000_000_000,
                200,
                &[f],
                &filler,
            );
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            assert_eq!(v["channel"], "c1");
            let fmt = v["formats"].as_object().unwrap().values().next().unwrap();
            let c = fmt[key].as_str().unwrap();
            assert_eq!(c.len(), 200 + extra, "{f:?}: {c:?}");
            assert_eq!(
                crate::http::parse_stamp(c.as_bytes()),
                Some((42, 1_700_000_000_000_000_000))
            );
        }
    }
}
