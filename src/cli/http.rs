//! A small blocking HTTP/1.1 client for the command line (`holdfast publish`, `holdfast status`):
//! one request per connection over `std::net`, the head written by the validating encoder
//! ([`HeadWriter`]) and the answer read with the proxy's own sans-IO parsers. No async runtime,
//! no TLS: holdfast's publish and metrics listeners speak plain HTTP.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::proto::http1::{
    BodyDecoder, HeadLimits, HeadWriter, Header, Parsed, header_value, parse_response,
};

/// Largest answer head read.
const HEAD_BYTES_MAX: usize = 16 * 1024;
const HEADERS_MAX: usize = 64;
/// Largest answer body read (/metrics of a many-core host is a few hundred KiB).
const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Most characters of an answer's body quoted in a message.
const TEXT_CHARS_MAX: usize = 2000;

/// Where requests go: `http://host:port` and a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// The Host header: host[:port] as given.
    authority: String,
    /// Path prefix without a trailing slash ("" for the root).
    prefix: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]`.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "invalid URL {text:?}: only http:// is supported (holdfast's publish and metrics \
                 listeners speak plain HTTP)"
            ));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => return Err(format!("invalid URL {text:?}: no host")),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_string(),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "invalid URL {text:?}: give credentials with --user or --jwt-key-file, not in \
                 the URL"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "invalid URL {text:?}: a query or fragment has no meaning here"
            ));
        }
        Ok(Endpoint {
            host,
            port,
            authority,
            prefix: url.path().trim_end_matches('/').to_string(),
        })
    }

    /// The endpoint of a listener address (a wildcard address is reached on loopback).
    pub fn from_listen(addr: SocketAddr) -> Endpoint {
        let addr = connectable(addr);
        Endpoint {
            host: addr.ip().to_string(),
            port: addr.port(),
            authority: addr.to_string(),
            prefix: String::new(),
        }
    }

    /// The request target for `path` (which starts with '/') under the prefix.
    pub fn target(&self, path: &str) -> String {
        // A URL that names the endpoint itself (http://host:5561/publish/) is not doubled.
        let bare = path.trim_end_matches('/');
        if !bare.is_empty() && self.prefix.ends_with(bare) {
            return format!("{}{}", self.prefix, &path[bare.len()..]);
        }
        format!("{}{path}", self.prefix)
    }

    /// `http://authority/prefix`, for messages.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.authority, self.target(path))
    }
}

/// An address to connect to for one that may be a wildcard listen address.
pub fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// An answer, its body decoded.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_value(&self.headers, name)
    }

    /// The body as text, trimmed and at most [`TEXT_CHARS_MAX`] characters, for messages.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(TEXT_CHARS_MAX) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_string(),
        }
    }
}

/// Why an exchange failed: nothing reached, or a broken answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: io::Error },
    #[error("{url}: {source}")]
    Io { url: String, source: io::Error },
    #[error("{url}: no answer within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u128 },
    #[error("{url}: {what}")]
    Protocol { url: String, what: String },
}

/// One request: method, path under the endpoint, extra headers and a body.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

/// Sends `req` on a new connection and reads the whole answer, all within `timeout`.
pub fn send(endpoint: &Endpoint, req: &Request<'_>, timeout: Duration) -> Result<Reply, HttpError> {
    let url = endpoint.url(req.path);
    let deadline = Instant::now() + timeout;
    let head = encode(endpoint, req).map_err(|what| HttpError::Protocol {
        url: url.clone(),
        what,
    })?;
    let mut stream = connect(endpoint, timeout).map_err(|source| HttpError::Connect {
        url: url.clone(),
        source,
    })?;
    let io_err = |source: io::Error| {
        if matches!(
            source.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            HttpError::Timeout {
                url: url.clone(),
                timeout_ms: timeout.as_millis(),
            }
        } else {
            HttpError::Io {
                url: url.clone(),
                source,
            }
        }
    };
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    stream.write_all(&head).map_err(io_err)?;
    stream.write_all(req.body).map_err(io_err)?;
    read_reply(&mut stream, req.method, deadline).map_err(|e| match e {
        ReadError::Io(source) => io_err(source),
        ReadError::Protocol(what) => HttpError::Protocol {
            url: url.clone(),
            what,
        },
    })
}

fn encode(endpoint: &Endpoint, req: &Request<'_>) -> Result<Vec<u8>, String> {
    let target = endpoint.target(req.path);
    let mut w = HeadWriter::request(req.method, &target, 256);
    w.header("Host", endpoint.authority.as_bytes())
        .header("User-Agent", b"holdfast-cli")
        .header("Connection", b"close");
    if !req.body.is_empty() || req.method == "POST" {
        w.header("Content-Length", req.body.len().to_string().as_bytes());
    }
    for (name, value) in req.headers {
        w.header(name, value);
    }
    w.finish()
        .map_err(|e| format!("cannot encode the request: {e}"))
}

/// Connects to the first address of the host that answers.
fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (endpoint.host.as_str(), endpoint.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

enum ReadError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// Reads one response: the head, then the body as the head frames it.
fn read_reply(stream: &mut TcpStream, method: &str, deadline: Instant) -> Result<Reply, ReadError> {
    let limits = HeadLimits {
        bytes_max: HEAD_BYTES_MAX,
        headers_max: HEADERS_MAX,
    };
    let mut buf = Vec::with_capacity(4096);
    let (head, used) = loop {
        if read_some(stream, &mut buf, deadline)? == 0 {
            return Err(ReadError::Protocol(
                "the connection closed before an answer arrived".into(),
            ));
        }
        match parse_response(&buf, limits, method) {
            Ok(Parsed::Complete(head, used)) => break (head, used),
            Ok(Parsed::NeedMore) => {}
            Err(e) => return Err(ReadError::Protocol(format!("bad answer: {e}"))),
        }
    };
    let mut decoder = BodyDecoder::new(head.body);
    let mut body = Vec::new();
    let mut pending = buf.split_off(used);
    loop {
        let progress = decoder
            .decode(&pending, &mut body)
            .map_err(|e| ReadError::Protocol(format!("bad answer body: {e}")))?;
        pending.drain(..progress.consumed);
        if body.len() > BODY_BYTES_MAX {
            return Err(ReadError::Protocol(format!(
                "answer body over {BODY_BYTES_MAX} bytes"
            )));
        }
        if progress.done {
            break;
        }
        if read_some(stream, &mut pending, deadline)? == 0 {
            decoder
                .finish_at_eof()
                .map_err(|e| ReadError::Protocol(format!("bad answer body: {e}")))?;
            break;
        }
    }
    Ok(Reply {
        status: head.code,
        reason: head.reason,
        headers: head.headers,
        body,
    })
}

/// Appends what one read returns (0 at EOF), waiting at most until `deadline`.
fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<usize> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
    stream.set_read_timeout(Some(left))?;
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn endpoints_from_urls_and_listen_addresses() {
        let e = Endpoint::parse("http://localhost:5561").unwrap();
        assert_eq!(e.target("/publish/"), "/publish/");
        assert_eq!(e.url("/metrics"), "http://localhost:5561/metrics");
        let e = Endpoint::parse("http://[::1]:9/grip/").unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.authority, "[::1]:9");
        assert_eq!(e.target("/publish/"), "/grip/publish/");
        // A URL naming the endpoint itself is not doubled.
        let e = Endpoint::parse("http://h/publish/").unwrap();
        assert_eq!((e.port, e.target("/publish/").as_str()), (80, "/publish/"));
        for bad in [
            "https://h/",
            "ftp://h/",
            "h:1",
            "http://h/?x=1",
            "http://u:p@h/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        let e = Endpoint::from_listen("0.0.0.0:5561".parse().unwrap());
        assert_eq!(e.url("/metrics"), "http://127.0.0.1:5561/metrics");
    }

    /// Serves one canned answer to one connection; returns the request it got.
    fn serve_once(answer: &'static [u8]) -> (Endpoint, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = vec![0u8; 4096];
            let n = s.read(&mut got).unwrap();
            got.truncate(n);
            s.write_all(answer).unwrap();
            got
        });
        (Endpoint::from_listen(addr), t)
    }

    #[test]
    fn reads_chunked_and_length_bodies() {
        let get = Request {
            method: "GET",
            path: "/metrics",
            headers: &[],
            body: b"",
        };
        let (e, t) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        let r = send(&e, &get, Duration::from_secs(5)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
        let sent = String::from_utf8(t.join().unwrap()).unwrap();
        assert!(
            sent.starts_with("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:"),
            "{sent}"
        );

        let (e, _t) = serve_once(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope");
        let r = send(&e, &get, Duration::from_secs(5)).unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.text().as_str()),
            (401, "Unauthorized", "nope")
        );
    }

    #[test]
    fn a_bad_header_is_refused_before_anything_is_sent() {
        let e = Endpoint::parse("http://127.0.0.1:1").unwrap();
        let req = Request {
            method: "POST",
            path: "/publish/",
            headers: &[("Authorization", b"Basic x\r\nX-Injected: 1")],
            body: b"{}",
        };
        let err = send(&e, &req, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, HttpError::Protocol { .. }), "{err}");
    }

    #[test]
    fn truncated_and_refused_are_errors() {
        let (e, _t) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        let get = Request {
            method: "GET",
            path: "/",
            headers: &[],
            body: b"",
        };
        let err = send(&e, &get, Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("before the body ended"), "{err}");
        // A port nothing listens on.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = Endpoint::from_listen(l.local_addr().unwrap());
        drop(l);
        let err = send(&e, &get, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err}");
    }
}
