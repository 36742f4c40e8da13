//! HTTP/1.x heads and bodies, sans-IO.
//!
//! Parses request heads (client side) and response heads (origin side) with httparse into owned
//! values, decides body framing, decodes chunked bodies incrementally, and encodes heads and chunks.
//! It never touches a socket: callers hand it bytes and get back what was parsed and how much was
//! consumed, or "need more".

use std::fmt::Write as _;

/// Upper bound on a chunk-size line (hex digits plus extensions): a guard against endless lines.
const CHUNK_LINE_MAX: usize = 4096;
/// Upper bound on the trailer section of a chunked body.
const TRAILER_BYTES_MAX: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// One header, name as received, value as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

impl Header {
    pub fn new(name: &str, value: &[u8]) -> Header {
        Header {
            name: name.to_string(),
            value: value.to_vec(),
        }
    }

    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// Response only: the body runs until the origin closes the connection.
    UntilClose,
}

/// A parsed client request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Vec<Header>,
    pub body: BodyKind,
    /// The client may send another request on this connection after this one.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// A parsed origin response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub code: u16,
    pub reason: String,
    pub version: Version,
    pub headers: Vec<Header>,
    pub body: BodyKind,
    /// The origin connection may carry another request after this response's body.
    pub keep_alive: bool,
}

/// Limits applied while parsing a head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub bytes_max: usize,
    pub headers_max: usize,
}

/// Why a head or body could not be parsed. Each maps to one client status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Http1Error {
    #[error("request header section is larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("more than {0} headers")]
    TooManyHeaders(usize),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("unsupported transfer-encoding")]
    UnsupportedTransferEncoding,
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
}

impl Http1Error {
    /// The status a client gets for this error in its request.
    pub fn status(&self) -> u16 {
        match self {
            Http1Error::HeadTooLarge(_) | Http1Error::TooManyHeaders(_) => 431,
            Http1Error::UnsupportedTransferEncoding => 501,
            Http1Error::Malformed(_) | Http1Error::BadChunk(_) => 400,
        }
    }
}

/// Result of feeding bytes to a head parser.
#[derive(Debug)]
pub enum Parsed<T> {
    /// The head and the number of bytes it took.
    Complete(T, usize),
    NeedMore,
}

/// Parses a request head from the start of `buf`.
pub fn parse_request(buf: &[u8], limits: HeadLimits) -> Result<Parsed<RequestHead>, Http1Error> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.headers_max];
    let mut req = httparse::Request::new(&mut slots);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Http1Error::TooManyHeaders(limits.headers_max));
        }
        Err(_) => return Err(Http1Error::Malformed("invalid request head")),
    };
    let len = match status {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return need_more(buf.len(), limits.bytes_max),
    };
    if len > limits.bytes_max {
        return Err(Http1Error::HeadTooLarge(limits.bytes_max));
    }
    let version = version_of(req.version)?;
    let headers = own_headers(req.headers);
    let (method, target) = match (req.method, req.path) {
        (Some(m), Some(p)) => (m.to_string(), p.to_string()),
        _ => return Err(Http1Error::Malformed("incomplete request line")),
    };
    if !target.starts_with('/') && target != "*" && !target.contains("://") {
        return Err(Http1Error::Malformed("invalid request target"));
    }
    if headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .nth(1)
        .is_some()
    {
        // RFC 9112 3.2: routes are chosen by Host, so two of them must not leave it ambiguous.
        return Err(Http1Error::Malformed("more than one Host header"));
    }
    let body = request_body_kind(&headers)?;
    let keep_alive = wants_keep_alive(version, &headers);
    let expect_continue =
        header_value(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    let head = RequestHead {
        method,
        target,
        version,
        headers,
        body,
        keep_alive,
        expect_continue,
    };
    Ok(Parsed::Complete(head, len))
}

/// Parses an origin response head. `request_method` decides whether a body follows (HEAD has none).
pub fn parse_response(
    buf: &[u8],
    limits: HeadLimits,
    request_method: &str,
) -> Result<Parsed<ResponseHead>, Http1Error> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.headers_max];
    let mut resp = httparse::Response::new(&mut slots);
    let status = match resp.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Http1Error::TooManyHeaders(limits.headers_max));
        }
        Err(_) => return Err(Http1Error::Malformed("invalid response head")),
    };
    let len = match status {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return need_more(buf.len(), limits.bytes_max),
    };
    if len > limits.bytes_max {
        return Err(Http1Error::HeadTooLarge(limits.bytes_max));
    }
    let version = version_of(resp.version)?;
    let code = resp
        .code
        .ok_or(Http1Error::Malformed("missing status code"))?;
    // httparse takes any three digits; "011" would be re-sent to the client as "11", a status line
    // no client can parse (found by fuzz/http1_request).
    if code < 100 {
        return Err(Http1Error::Malformed("status code below 100"));
    }
    let reason = resp.reason.unwrap_or("").to_string();
    let headers = own_headers(resp.headers);
    let body = response_body_kind(code, request_method, &headers)?;
    let keep_alive = body != BodyKind::UntilClose && wants_keep_alive(version, &headers);
    let head = ResponseHead {
        code,
        reason,
        version,
        headers,
        body,
        keep_alive,
    };
    Ok(Parsed::Complete(head, len))
}

fn need_more<T>(have: usize, max: usize) -> Result<Parsed<T>, Http1Error> {
    if have > max {
        Err(Http1Error::HeadTooLarge(max))
    } else {
        Ok(Parsed::NeedMore)
    }
}

fn version_of(v: Option<u8>) -> Result<Version, Http1Error> {
    match v {
        Some(0) => Ok(Version::Http10),
        Some(1) => Ok(Version::Http11),
        _ => Err(Http1Error::Malformed("unsupported HTTP version")),
    }
}

fn own_headers(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| Header::new(h.name, h.value))
        .collect()
}

/// First value of a header, by case-insensitive name.
pub fn header_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// True if any `name` header lists `token` (comma-separated, case-insensitive).
pub fn header_has_token(headers: &[Header], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn wants_keep_alive(version: Version, headers: &[Header]) -> bool {
    match version {
        Version::Http11 => !header_has_token(headers, "connection", "close"),
        Version::Http10 => header_has_token(headers, "connection", "keep-alive"),
    }
}

/// Body framing of a request (RFC 9112 §6.3): chunked wins, several lengths must agree.
fn request_body_kind(headers: &[Header]) -> Result<BodyKind, Http1Error> {
    match framing(headers)? {
        BodyKind::UntilClose => Ok(BodyKind::None),
        kind => Ok(kind),
    }
}

fn response_body_kind(code: u16, method: &str, headers: &[Header]) -> Result<BodyKind, Http1Error> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&code)
        || code == 204
        || code == 304
    {
        return Ok(BodyKind::None);
    }
    framing(headers)
}

/// Framing from Transfer-Encoding / Content-Length; `UntilClose` when neither is present.
fn framing(headers: &[Header]) -> Result<BodyKind, Http1Error> {
    let mut te_seen = false;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        te_seen = true;
        let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
        if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(Http1Error::UnsupportedTransferEncoding);
        }
    }
    let mut length: Option<u64> = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for part in h.value.split(|&b| b == b',') {
            let n = parse_decimal(part.trim_ascii())
                .ok_or(Http1Error::Malformed("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Http1Error::Malformed("conflicting content-length"));
            }
            length = Some(n);
        }
    }
    if te_seen {
        if length.is_some() {
            // A request smuggling vector: refuse rather than guess (RFC 9112 §6.3 allows it).
            return Err(Http1Error::Malformed(
                "both transfer-encoding and content-length",
            ));
        }
        return Ok(BodyKind::Chunked);
    }
    Ok(match length {
        Some(0) => BodyKind::None,
        Some(n) => BodyKind::Length(n),
        None => BodyKind::UntilClose,
    })
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Incremental decoder of a chunked body.
///
/// States: `Size` (reading a chunk-size line) → `Data` (n bytes left) → `DataEnd` (CRLF) → `Size`
/// ... → size 0 → `Trailers` → `Done`.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line_len: usize,
    size: u64,
    trailer_bytes: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    SizeLf,
    Ext,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// What one call to [`ChunkedDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Input bytes consumed.
    pub consumed: usize,
    /// The final chunk and trailers have been read.
    pub done: bool,
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes as much of `input` as possible, appending body data to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<ChunkProgress, Http1Error> {
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            if self.state == ChunkState::Data {
                let take = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[i..i + take]);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = ChunkState::DataCr;
                }
                continue;
            }
            self.step(input[i])?;
            i += 1;
        }
        Ok(ChunkProgress {
            consumed: i,
            done: self.state == ChunkState::Done,
        })
    }

    /// Advances the framing state machine by one byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), Http1Error> {
        use ChunkState::*;
        match self.state {
            Size => self.size_byte(b)?,
            Ext => match b {
                b'\r' => self.state = SizeLf,
                b'\n' => self.end_size_line(),
                _ => self.count_line()?,
            },
            SizeLf => match b {
                b'\n' => self.end_size_line(),
                _ => return Err(Http1Error::BadChunk("expected LF after chunk size")),
            },
            DataCr => match b {
                b'\r' => self.state = DataLf,
                b'\n' => self.state = Size,
                _ => return Err(Http1Error::BadChunk("missing CRLF after chunk data")),
            },
            DataLf => match b {
                b'\n' => self.state = Size,
                _ => return Err(Http1Error::BadChunk("missing LF after chunk data")),
            },
            TrailerStart => match b {
                b'\r' => self.state = EndLf,
                b'\n' => self.state = Done,
                _ => self.trailer_byte(TrailerLine)?,
            },
            TrailerLine => match b {
                b'\r' => self.trailer_byte(TrailerLf)?,
                b'\n' => self.trailer_byte(TrailerStart)?,
                _ => self.trailer_byte(TrailerLine)?,
            },
            TrailerLf => match b {
                b'\n' => self.trailer_byte(TrailerStart)?,
                _ => return Err(Http1Error::BadChunk("bad trailer line ending")),
            },
            EndLf => match b {
                b'\n' => self.state = Done,
                _ => return Err(Http1Error::BadChunk("bad final CRLF")),
            },
            Data | Done => {}
        }
        Ok(())
    }

    fn size_byte(&mut self, b: u8) -> Result<(), Http1Error> {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b';' | b' ' | b'\t' if self.line_len > 0 => {
                self.state = ChunkState::Ext;
                return self.count_line();
            }
            b'\r' if self.line_len > 0 => {
                self.state = ChunkState::SizeLf;
                return Ok(());
            }
            b'\n' if self.line_len > 0 => {
                self.end_size_line();
                return Ok(());
            }
            _ => return Err(Http1Error::BadChunk("invalid chunk size")),
        };
        if self.size > (u64::MAX >> 8) {
            return Err(Http1Error::BadChunk("chunk size overflows"));
        }
        self.size = self.size * 16 + u64::from(digit);
        self.count_line()
    }

    fn count_line(&mut self) -> Result<(), Http1Error> {
        self.line_len += 1;
        if self.line_len > CHUNK_LINE_MAX {
            return Err(Http1Error::BadChunk("chunk size line too long"));
        }
        Ok(())
    }

    fn end_size_line(&mut self) {
        self.line_len = 0;
        self.state = if self.size == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data
        };
    }

    fn trailer_byte(&mut self, next: ChunkState) -> Result<(), Http1Error> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > TRAILER_BYTES_MAX {
            return Err(Http1Error::BadChunk("trailers too large"));
        }
        self.state = next;
        Ok(())
    }
}

/// Decodes a message body of any framing: feed bytes, get body data out, until done.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: BodyKind,
    remaining: u64,
    chunked: ChunkedDecoder,
    done: bool,
}

impl BodyDecoder {
    pub fn new(kind: BodyKind) -> BodyDecoder {
        BodyDecoder {
            kind,
            remaining: match kind {
                BodyKind::Length(n) => n,
                _ => 0,
            },
            chunked: ChunkedDecoder::new(),
            done: kind == BodyKind::None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Consumes body bytes from `input`, appending the decoded data to `out`. Bytes after the end
    /// of the body are left unconsumed.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<ChunkProgress, Http1Error> {
        let consumed = match self.kind {
            _ if self.done => 0,
            BodyKind::None => 0,
            BodyKind::Length(_) => {
                let take = input
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                self.remaining -= take as u64;
                self.done = self.remaining == 0;
                take
            }
            BodyKind::Chunked => {
                let p = self.chunked.decode(input, out)?;
                self.done = p.done;
                p.consumed
            }
            BodyKind::UntilClose => {
                out.extend_from_slice(input);
                input.len()
            }
        };
        Ok(ChunkProgress {
            consumed,
            done: self.done,
        })
    }

    /// The peer closed the connection: fine for a body that runs until close, an error for a
    /// body that was cut short.
    pub fn finish_at_eof(&mut self) -> Result<(), Http1Error> {
        if self.done || self.kind == BodyKind::UntilClose {
            self.done = true;
            Ok(())
        } else {
            Err(Http1Error::Malformed(
                "connection closed before the body ended",
            ))
        }
    }
}

/// Appends one chunk (`size CRLF data CRLF`) to `out`. Empty data appends nothing: an empty chunk
/// would end the body.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut size = String::with_capacity(10);
    let _ = write!(size, "{:x}\r\n", data.len());
    out.reserve(size.len() + data.len() + 2);
    out.extend_from_slice(size.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends a status line.
pub fn encode_status_line(out: &mut Vec<u8>, version: Version, code: u16, reason: &str) {
    let v = match version {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    };
    let reason = if reason.is_empty() {
        reason_phrase(code)
    } else {
        reason
    };
    let _ = write_str(out, format_args!("{v} {code} {reason}\r\n"));
}

/// Appends `name: value\r\n`.
pub fn encode_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn write_str(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) -> std::fmt::Result {
    let mut s = String::new();
    s.write_fmt(args)?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// The standard reason phrase of a status code ("Unknown" for codes without one).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy never forwards.
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// A complete small response with a body and Content-Length, for errors and simple answers.
pub fn simple_response(
    code: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    encode_status_line(&mut out, Version::Http11, code, "");
    encode_header(&mut out, "Content-Type", content_type.as_bytes());
    encode_header(
        &mut out,
        "Content-Length",
        body.len().to_string().as_bytes(),
    );
    for (name, value) in extra {
        encode_header(&mut out, name, value.as_bytes());
    }
    if close {
        encode_header(&mut out, "Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        bytes_max: 1024,
        headers_max: 16,
    };

    fn req(text: &str) -> Result<Parsed<RequestHead>, Http1Error> {
        parse_request(text.as_bytes(), LIMITS)
    }

    fn complete(text: &str) -> (RequestHead, usize) {
        match req(text).unwrap() {
            Parsed::Complete(h, n) => (h, n),
            Parsed::NeedMore => panic!("incomplete"),
        }
    }

    #[test]
    fn simple_get() {
        let (h, n) = complete("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nrest");
        assert_eq!(n, 32);
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/a?b=1");
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive);
        assert_eq!(header_value(&h.headers, "HOST"), Some(&b"x"[..]));
    }

    #[test]
    fn two_host_headers_are_400() {
        let err = req("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n").unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("Host"), "{err}");
    }

    #[test]
    fn partial_head_needs_more() {
        assert!(matches!(
            req("GET / HTTP/1.1\r\nHost:"),
            Ok(Parsed::NeedMore)
        ));
    }

    #[test]
    fn oversized_partial_head_is_431() {
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
        let err = req(&long).unwrap_err();
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn oversized_complete_head_is_431() {
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(req(&long).unwrap_err().status(), 431);
    }

    #[test]
    fn too_many_headers_is_431() {
        let many: String = (0..20).map(|i| format!("H{i}: v\r\n")).collect();
        let err = req(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err();
        assert_eq!(err, Http1Error::TooManyHeaders(16));
    }

    #[test]
    fn garbage_is_400() {
        assert_eq!(req("\x01\x02 garbage\r\n\r\n").unwrap_err().status(), 400);
        assert_eq!(req("GET / HTTP/2.0\r\n\r\n").unwrap_err().status(), 400);
        assert_eq!(
            req("GET nopath HTTP/1.1\r\n\r\n").unwrap_err().status(),
            400
        );
    }

    #[test]
    fn body_framing() {
        let (h, _) = complete("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(5));
        let (h, _) = complete("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.body, BodyKind::Chunked);
        let (h, _) = complete("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(5));
    }

    #[test]
    fn bad_framing_is_rejected() {
        let both = "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(req(both).unwrap_err().status(), 400);
        let conflict = "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(req(conflict).unwrap_err().status(), 400);
        let neg = "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(req(neg).unwrap_err().status(), 400);
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(req(gzip).unwrap_err().status(), 501);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(
            complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(
            !complete("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n")
                .0
                .keep_alive
        );
    }

    #[test]
    fn expect_continue() {
        let (h, _) =
            complete("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(h.expect_continue);
    }

    fn resp(text: &str, method: &str) -> ResponseHead {
        match parse_response(text.as_bytes(), LIMITS, method).unwrap() {
            Parsed::Complete(h, _) => h,
            Parsed::NeedMore => panic!("incomplete"),
        }
    }

    #[test]
    fn response_framing() {
        assert_eq!(
            resp("HTTP/1.1 200 OK\r\n\r\n", "GET").body,
            BodyKind::UntilClose
        );
        assert!(!resp("HTTP/1.1 200 OK\r\n\r\n", "GET").keep_alive);
        let h = resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "GET");
        assert_eq!(h.body, BodyKind::Length(3));
        assert!(h.keep_alive);
        assert_eq!(
            resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD").body,
            BodyKind::None
        );
        assert_eq!(
            resp("HTTP/1.1 204 No Content\r\n\r\n", "GET").body,
            BodyKind::None
        );
        assert_eq!(
            resp("HTTP/1.1 304 Not Modified\r\n\r\n", "GET").body,
            BodyKind::None
        );
        let h = resp(
            "HTTP/1.1 404 Nope\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET",
        );
        assert_eq!(
            (h.code, h.reason.as_str(), h.body),
            (404, "Nope", BodyKind::Chunked)
        );
    }

    #[test]
    fn response_status_code_below_100_is_rejected() {
        // Fuzz finding: "011" parsed as code 11, which encode_status_line writes as "11".
        let r = parse_response(b"HTTP/1.0 011 Unknown\r\n\r\n", LIMITS, "GET");
        assert_eq!(
            r.err(),
            Some(Http1Error::Malformed("status code below 100"))
        );
        assert_eq!(resp("HTTP/1.1 100 Continue\r\n\r\n", "GET").code, 100);
    }

    fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), Http1Error> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let p = d.decode(piece, &mut out)?;
            used += p.consumed;
            if p.done {
                return Ok((out, true, used));
            }
        }
        Ok((out, false, used))
    }

    #[test]
    fn chunked_decoding_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (out, done, used) = dechunk(body, step).unwrap();
            assert_eq!(out, b"hello world");
            assert!(done);
            assert_eq!(used, body.len() - 4, "step {step}");
        }
    }

    #[test]
    fn chunked_accepts_bare_lf_and_upper_hex() {
        let (out, done, _) = dechunk(b"A\nabcdefghij\n0\n\n", 4).unwrap();
        assert_eq!(out, b"abcdefghij");
        assert!(done);
    }

    #[test]
    fn chunked_errors() {
        assert!(dechunk(b"zz\r\n", 10).is_err());
        assert!(dechunk(b"\r\n", 10).is_err());
        assert!(dechunk(b"3\r\nabcX\r\n", 10).is_err());
        assert!(dechunk(b"fffffffffffffffffff\r\n", 100).is_err());
        let long_ext = format!("1;{}\r\n", "e".repeat(5000));
        assert!(dechunk(long_ext.as_bytes(), 100).is_err());
    }

    #[test]
    fn body_decoder_length_leaves_the_rest() {
        let mut d = BodyDecoder::new(BodyKind::Length(3));
        let mut out = Vec::new();
        let p = d.decode(b"abcGET", &mut out).unwrap();
        assert_eq!((p.consumed, p.done, &out[..]), (3, true, &b"abc"[..]));
        assert_eq!(d.decode(b"more", &mut out).unwrap().consumed, 0);
    }

    #[test]
    fn body_decoder_until_close_and_truncation() {
        let mut d = BodyDecoder::new(BodyKind::UntilClose);
        let mut out = Vec::new();
        assert!(!d.decode(b"abc", &mut out).unwrap().done);
        assert!(d.finish_at_eof().is_ok() && d.is_done());
        let mut d = BodyDecoder::new(BodyKind::Length(5));
        d.decode(b"ab", &mut out).unwrap();
        assert!(d.finish_at_eof().is_err());
        assert!(BodyDecoder::new(BodyKind::None).is_done());
    }

    #[test]
    fn chunk_encoding() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"hello world, this is 27 byte");
        encode_chunk(&mut out, b"");
        assert_eq!(out, b"1c\r\nhello world, this is 27 byte\r\n");
    }

    #[test]
    fn simple_response_is_well_formed() {
        let r = simple_response(404, "text/plain", &[("Allow", "POST")], b"nope\n", true);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.contains("Allow: POST\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nnope\n"));
    }

    #[test]
    fn hop_by_hop() {
        assert!(is_hop_by_hop("Connection"));
        assert!(is_hop_by_hop("transfer-encoding"));
        assert!(!is_hop_by_hop("content-type"));
    }
}
