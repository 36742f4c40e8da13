//! One HTTP/1.1 exchange with an origin over a pooled or fresh connection.
//!
//! Targets are tried in order; an idle pooled connection that turns out to be closed is retried
//! once on a fresh connection (the request never reached the origin). Connect and response-head
//! timeouts map to 502/504 for the client. The caller reads the body and returns the connection
//! to the pool only when the whole response was consumed and the origin allows keep-alive.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::pool::{InFlightLimit, OriginPool};
use super::stream::{Dest, OriginStream, PoolKey, TlsDest};
use crate::config::Config;
use crate::io::bufpool::BufPool;
use crate::metrics::WorkerMetrics;
use crate::proto::http1::{self, BodyDecoder, HeadLimits, Http1Error, Parsed, ResponseHead};
use crate::routes::Target;
use crate::tls::OriginTls;

/// The origin side one worker owns: its keep-alive pool, its limit on requests in flight per
/// address, the read buffers it borrows and its counters. Whoever talks to an origin is handed
/// this (an `Rc`: exchanges run in tasks of their own), and nothing else of the worker.
pub struct OriginClient {
    pool: RefCell<OriginPool>,
    limit: Rc<InFlightLimit>,
    bufs: Rc<BufPool>,
    metrics: Arc<WorkerMetrics>,
    epoch: Instant,
}

impl OriginClient {
    /// Pool sizes and the in-flight limit are fixed at start (a reload does not change them).
    pub fn new(config: &Config, bufs: Rc<BufPool>, metrics: Arc<WorkerMetrics>) -> OriginClient {
        let o = &config.origin;
        OriginClient {
            pool: RefCell::new(OriginPool::new(o.pool_idle_max, o.pool_idle_timeout_ms)),
            limit: InFlightLimit::new(o.requests_in_flight_max),
            bufs,
            metrics,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Idle pooled connections, over all addresses.
    pub fn idle_count(&self) -> usize {
        self.pool.borrow().idle_count()
    }
}

/// What an exchange needs to know of the route it serves (the runtime's route handle provides
/// it): the targets in order, their resolved addresses, the TLS client configs, and the settings
/// snapshot whose `[origin]` and `[http]` limits apply.
pub trait OriginRoute {
    fn targets(&self) -> &[Target];
    fn target_addrs(&self, t: usize) -> &[SocketAddr];
    fn origin_tls(&self) -> Option<&OriginTls>;
    fn config(&self) -> &Config;
}

#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("cannot connect to origin {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("connecting to origin {0} timed out")]
    ConnectTimeout(SocketAddr),
    #[error("origin {0} sent no response head in time")]
    Timeout(SocketAddr),
    #[error("origin {0} closed the connection without a response")]
    Closed(SocketAddr),
    #[error("I/O error with origin {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
    #[error("invalid response from origin {addr}: {source}")]
    Invalid {
        addr: SocketAddr,
        source: Http1Error,
    },
    #[error("origin {addr} response body over {max} bytes")]
    BodyTooLarge { addr: SocketAddr, max: usize },
    #[error("TLS with origin {addr} failed: {reason}")]
    Tls { addr: SocketAddr, reason: String },
    #[error("origin TLS: {0}")]
    TlsName(String),
    /// The request head could not be encoded (the validating encoder refused a field); nothing
    /// was sent.
    #[error("request not sent: {0}")]
    RequestHead(http1::EncodeError),
}

/// Where target `t` of `route` is, and how to reach it. `host` is the Host header the request
/// carries: a TLS origin's certificate must be valid for it (Pushpin's rule), or for the
/// target's own host with `trust_connect_host`.
pub fn dest<'a>(
    route: &'a dyn OriginRoute,
    t: usize,
    host: Option<&[u8]>,
) -> Result<Dest<'a>, OriginError> {
    let target = &route.targets()[t];
    let addrs = route.target_addrs(t);
    if !target.ssl {
        return Ok(Dest { addrs, tls: None });
    }
    let Some(clients) = route.origin_tls() else {
        return Err(OriginError::TlsName("no TLS client configuration".into()));
    };
    let name = match host.and_then(|h| std::str::from_utf8(h).ok()) {
        Some(h) if !target.trust_connect_host => host_without_port(h),
        _ => target.host.as_str(),
    };
    let name = crate::tls::origin_server_name(name).map_err(OriginError::TlsName)?;
    let config = if target.insecure {
        clients.insecure.clone()
    } else {
        clients.verified.clone()
    };
    Ok(Dest {
        addrs,
        tls: Some(TlsDest {
            config,
            name,
            insecure: target.insecure,
        }),
    })
}

/// `example.com:8443` → `example.com`, `[::1]:443` → `::1`.
fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

impl OriginError {
    /// The status the client receives.
    pub fn status(&self) -> u16 {
        match self {
            OriginError::ConnectTimeout(_) | OriginError::Timeout(_) => 504,
            _ => 502,
        }
    }
}

/// A whole response (head and body) read from the origin.
pub struct FullResponse {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<http1::Header>,
    pub body: Vec<u8>,
}

impl FullResponse {
    pub fn header_pairs(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone {
        self.headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_slice()))
    }
}

/// Sends `request` (whose Host header is `host`) to the route's targets in order and reads the
/// whole answer (bounded).
pub async fn fetch(
    client: &OriginClient,
    route: &dyn OriginRoute,
    host: Option<&[u8]>,
    method: &str,
    request: Vec<u8>,
    body_max: usize,
) -> Result<FullResponse, OriginError> {
    let targets = route.targets().len();
    let mut last = None;
    let mut request = Some(request);
    for n in 0..targets {
        // The request is copied only if another target may still need it.
        let attempt = if n + 1 < targets {
            request.clone().unwrap_or_default()
        } else {
            request.take().unwrap_or_default()
        };
        let dest = dest(route, n, host)?;
        let mut resp = match send(client, route.config(), &dest, method, attempt).await {
            Ok(r) => r,
            Err(e @ OriginError::Timeout(_)) => return Err(e),
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let timeout = route.config().origin.response_timeout_ms;
        let body = resp.read_body(body_max, timeout).await;
        let head = resp.head.clone();
        resp.finish(client, body.is_ok());
        return Ok(FullResponse {
            code: head.code,
            reason: head.reason,
            headers: head.headers,
            body: body?,
        });
    }
    Err(last.unwrap_or(OriginError::Closed(SocketAddr::from(([0, 0, 0, 0], 0)))))
}

/// A response head from the origin plus the connection and any body bytes already read.
pub struct OriginResponse {
    pub head: ResponseHead,
    pub addr: SocketAddr,
    key: PoolKey,
    stream: OriginStream,
    /// Bytes received after the head and not yet consumed.
    pub buf: Vec<u8>,
}

/// Sends `request` (a complete HTTP/1.1 request) to the first of the destination's addresses
/// that answers, under `config`'s `[origin]` limits (the route's settings snapshot).
pub async fn send(
    client: &OriginClient,
    config: &Config,
    dest: &Dest<'_>,
    method: &str,
    request: Vec<u8>,
) -> Result<OriginResponse, OriginError> {
    WorkerMetrics::inc(&client.metrics.origin_requests);
    let result = send_to_any(client, config, dest, method, request).await;
    if result.is_err() {
        WorkerMetrics::inc(&client.metrics.origin_errors);
    }
    result
}

async fn send_to_any(
    client: &OriginClient,
    config: &Config,
    dest: &Dest<'_>,
    method: &str,
    mut request: Vec<u8>,
) -> Result<OriginResponse, OriginError> {
    let mut last_err = None;
    let wait = Duration::from_millis(config.origin.connect_timeout_ms);
    for addr in dest.addrs.iter().copied() {
        let key = PoolKey::new(addr, dest.tls.as_ref());
        // Held until the response head arrives (or the attempt fails).
        let Ok(_lease) = monoio::time::timeout(wait, client.limit.acquire(addr)).await else {
            tracing::warn!("origin {addr}: too many requests in flight, none finished in time");
            last_err = Some(OriginError::ConnectTimeout(addr));
            continue;
        };
        let (pooled, unquiet) = client.pool.borrow_mut().take(&key, client.now_ms());
        WorkerMetrics::add(&client.metrics.origin_pool_unquiet, unquiet);
        if let Some(stream) = pooled {
            match exchange(client, config, stream, &key, method, request).await {
                Ok(resp) => return Ok(resp),
                Err((_, e @ OriginError::Timeout(_))) => return Err(e),
                // A stale pooled connection: the request never got a byte back; retry fresh.
                Err((req, _)) => request = req,
            }
        }
        let stream = match connect(config, addr, dest.tls.as_ref()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("{e}");
                last_err = Some(e);
                continue;
            }
        };
        match exchange(client, config, stream, &key, method, request).await {
            Ok(resp) => return Ok(resp),
            Err((req, e)) => {
                request = req;
                if matches!(e, OriginError::Timeout(_)) {
                    // The origin got the request and is slow: do not send it again elsewhere.
                    return Err(e);
                }
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or(OriginError::Closed(SocketAddr::from(([0, 0, 0, 0], 0)))))
}

/// Connects (and for TLS, shakes hands) within the connect timeout.
async fn connect(
    config: &Config,
    addr: SocketAddr,
    tls: Option<&TlsDest>,
) -> Result<OriginStream, OriginError> {
    let timeout = Duration::from_millis(config.origin.connect_timeout_ms);
    let work = async {
        let tcp = TcpStream::connect_addr(addr)
            .await
            .map_err(|source| OriginError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None => Ok(OriginStream::Plain(tcp)),
            Some(t) => OriginStream::handshake(tcp, t)
                .await
                .map_err(|e| OriginError::Tls {
                    addr,
                    reason: e.to_string(),
                }),
        }
    };
    match monoio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(OriginError::ConnectTimeout(addr)),
    }
}

/// Writes the request and reads the response head; gives the request back on failure.
async fn exchange(
    client: &OriginClient,
    config: &Config,
    mut stream: OriginStream,
    key: &PoolKey,
    method: &str,
    request: Vec<u8>,
) -> Result<OriginResponse, (Vec<u8>, OriginError)> {
    let addr = key.addr;
    let (res, request) = stream.write_all(request).await;
    if let Err(source) = res {
        return Err((request, OriginError::Io { addr, source }));
    }
    let cfg = &config.origin;
    let limits = HeadLimits {
        bytes_max: cfg.response_header_bytes_max,
        headers_max: config.http.headers_count_max.max(100),
    };
    let timeout = Duration::from_millis(cfg.response_timeout_ms);
    let buf = client.bufs.take();
    match monoio::time::timeout(timeout, read_head(&mut stream, addr, buf, limits, method)).await {
        Ok(Ok((head, buf))) => Ok(OriginResponse {
            head,
            addr,
            key: key.clone(),
            stream,
            buf,
        }),
        Ok(Err(e)) => Err((request, e)),
        Err(_) => Err((request, OriginError::Timeout(addr))),
    }
}

async fn read_head(
    stream: &mut OriginStream,
    addr: SocketAddr,
    mut buf: Vec<u8>,
    limits: HeadLimits,
    method: &str,
) -> Result<(ResponseHead, Vec<u8>), OriginError> {
    loop {
        let n = stream
            .read_into(&mut buf)
            .await
            .map_err(|source| OriginError::Io { addr, source })?;
        if n == 0 {
            return Err(OriginError::Closed(addr));
        }
        match http1::parse_response(&buf, limits, method) {
            Ok(Parsed::Complete(head, used)) if head.code >= 200 || head.code == 101 => {
                buf.drain(..used);
                return Ok((head, buf));
            }
            // An interim 1xx (e.g. 100 Continue): skip it and wait for the final head.
            Ok(Parsed::Complete(_, used)) => {
                buf.drain(..used);
            }
            Ok(Parsed::NeedMore) => {}
            Err(source) => return Err(OriginError::Invalid { addr, source }),
        }
    }
}

impl OriginResponse {
    /// Reads more body bytes into `self.buf`; 0 means the origin closed the connection.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        self.stream.read_into(&mut self.buf).await
    }

    /// Reads the whole body (used when the response carries GRIP instructions).
    pub async fn read_body(&mut self, max: usize, timeout_ms: u64) -> Result<Vec<u8>, OriginError> {
        let addr = self.addr;
        let work = async {
            let mut decoder = BodyDecoder::new(self.head.body);
            let mut body = Vec::new();
            loop {
                let p = decoder
                    .decode(&self.buf, &mut body)
                    .map_err(|source| OriginError::Invalid { addr, source })?;
                self.buf.drain(..p.consumed);
                if body.len() > max {
                    return Err(OriginError::BodyTooLarge { addr, max });
                }
                if p.done {
                    return Ok(body);
                }
                let n = self
                    .read_more()
                    .await
                    .map_err(|source| OriginError::Io { addr, source })?;
                if n == 0 {
                    decoder
                        .finish_at_eof()
                        .map_err(|source| OriginError::Invalid { addr, source })?;
                    return Ok(body);
                }
            }
        };
        match monoio::time::timeout(Duration::from_millis(timeout_ms), work).await {
            Ok(r) => r,
            Err(_) => Err(OriginError::Timeout(addr)),
        }
    }

    /// The connection after a `101 Switching Protocols`, with any bytes already read past the head.
    pub fn into_upgraded(self) -> (OriginStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// Returns the connection to the pool when it can carry another request, and the read
    /// buffer to the worker's pool.
    pub fn finish(self, client: &OriginClient, body_complete: bool) {
        let OriginResponse {
            head,
            key,
            stream,
            buf,
            ..
        } = self;
        if body_complete && head.keep_alive && buf.is_empty() {
            client.pool.borrow_mut().put(key, stream, client.now_ms());
        }
        client.bufs.give(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_off_host_headers() {
        assert_eq!(host_without_port("example.com:8443"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:443"), "::1");
        assert_eq!(host_without_port("[::1]"), "::1");
        assert_eq!(host_without_port("::1"), "::1");
    }
}
