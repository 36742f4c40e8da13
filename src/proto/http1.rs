//! HTTP/1.x heads and bodies, sans-IO.
//!
//! Parses request heads (client side) and response heads (origin side) with httparse into owned
//! values, decides body framing, decodes chunked bodies incrementally, and encodes heads and chunks.
//! It never touches a socket: callers hand it bytes and get back what was parsed and how much was
//! consumed, or "need more".

mod encode;

pub use encode::{
    EncodeError, HeadPrefix, HeadWriter, LAST_CHUNK, encode_chunk, is_field_value,
    is_forbidden_in_field, is_tchar, is_token, reason_phrase, simple_response,
};

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
    if headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .nth(1)
        .is_some()
    {
        // RFC 9112 3.2: routes are chosen by Host, so two of them must not leave it ambiguous.
        return Err(Http1Error::Malformed("more than one Host header"));
    }
    let (target, headers) = if !target.starts_with('/') && target != "*" {
        to_origin_form(&target, headers, limits.headers_max)?
    } else {
        (target, headers)
    };
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

/// An absolute-form target (`GET http://host/path HTTP/1.1`) as origin-form, with its authority
/// as the one Host header (RFC 9112 §3.2.2: the target's authority wins over any Host sent).
/// Done here, before anything looks at the request, so routing (`path_beg`), the route's path
/// rewrite and what the origin receives all see the same path and host as for any request.
fn to_origin_form(
    target: &str,
    mut headers: Vec<Header>,
    headers_max: usize,
) -> Result<(String, Vec<Header>), Http1Error> {
    let url =
        url::Url::parse(target).map_err(|_| Http1Error::Malformed("invalid request target"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Http1Error::Malformed(
            "absolute-form target must be http or https",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Http1Error::Malformed("request target with user info"));
    }
    let host = url
        .host_str()
        .ok_or(Http1Error::Malformed("absolute-form target without a host"))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let origin_form = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    // At most one Host header was sent (checked before): replace it where it stands, or add one
    // within the header count limit.
    let count = headers.len();
    match headers
        .iter_mut()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
    {
        Some(host) => host.value = authority.into_bytes(),
        None if count < headers_max => headers.push(Header::new("Host", authority.as_bytes())),
        None => return Err(Http1Error::TooManyHeaders(headers_max)),
    }
    Ok((origin_form, headers))
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

#[cfg(test)]
mod tests;
