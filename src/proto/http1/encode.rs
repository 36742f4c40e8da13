//! The one HTTP/1 head encoder: every status line, request line and header field holdfast
//! writes, whoever supplied its bytes (client, origin, publisher, cluster peer, configuration),
//! goes through [`HeadWriter`].
//!
//! It refuses what would not come back as the same single field: CR, LF, NUL and other control
//! characters in values, reasons and targets, non-token names and methods. Refusal is an error the
//! caller turns into a status (400 to a publisher, 502 to a client) and a log line; no byte of a
//! refused head is ever returned, so nothing half-written reaches a socket.

use std::fmt::Write as _;

use super::Version;

/// Why a head could not be encoded. Carries the offending header's name (never its value, which
/// may be a secret) so the log line says which field was bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    #[error("header {0} has a control character in its value")]
    HeaderValue(String),
    #[error("status reason has a control character")]
    Reason,
    #[error("status code {0} is not three digits")]
    Status(u16),
    #[error("invalid request method {0:?}")]
    Method(String),
    #[error("request target has a space or control character")]
    Target,
}

/// RFC 9110 `tchar` by byte value, built once at compile time: names are checked on every head
/// holdfast writes, so this is one load per byte rather than a search of the symbol list.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

/// RFC 9110 `tchar`: what a header name or a method is made of.
pub fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// A non-empty RFC 9110 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Bytes a field value or reason phrase may not hold: controls other than tab, and DEL
/// (RFC 9110 §5.5: field-vchar, SP, HTAB, obs-text). CR, LF and NUL are among them.
pub fn is_forbidden_in_field(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// A field value (or reason phrase) that stays one field on the wire.
pub fn is_field_value(v: &[u8]) -> bool {
    // Branch-free per byte so the loop vectorises: tab, or 0x20..=0x7e, or 0x80..=0xff.
    v.iter().fold(true, |ok, &b| {
        ok & ((b >= 0x20) & (b != 0x7f) | (b == b'\t'))
    })
}

/// A request target in origin, absolute or asterisk form: no space, no control character.
fn is_request_target(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b > 0x20 && b != 0x7f)
}

/// At most this much of a bad name goes into an error (and so into a log line).
const NAME_IN_ERROR_MAX: usize = 64;

fn shown(name: &str) -> String {
    name.chars().take(NAME_IN_ERROR_MAX).collect()
}

/// Builds one HTTP/1.1 head. Every part is validated as it is added; the first failure is kept
/// and [`HeadWriter::finish`] returns it instead of the bytes.
#[derive(Debug)]
pub struct HeadWriter {
    out: Vec<u8>,
    error: Option<EncodeError>,
}

impl HeadWriter {
    /// `METHOD target HTTP/1.1`.
    pub fn request(method: &str, target: &str, capacity: usize) -> HeadWriter {
        let mut w = HeadWriter::empty(capacity);
        if !is_token(method) {
            w.error = Some(EncodeError::Method(shown(method)));
        } else if !is_request_target(target) {
            w.error = Some(EncodeError::Target);
        } else {
            w.push(&[method.as_bytes(), b" ", target.as_bytes(), b" HTTP/1.1\r\n"]);
        }
        w
    }

    /// `HTTP/1.x code reason`; an empty reason becomes the code's standard phrase.
    pub fn response(version: Version, code: u16, reason: &str, capacity: usize) -> HeadWriter {
        let mut w = HeadWriter::empty(capacity);
        let v = match version {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        };
        let reason = if reason.is_empty() {
            reason_phrase(code)
        } else {
            reason
        };
        if !(100..=999).contains(&code) {
            w.error = Some(EncodeError::Status(code));
        } else if !is_field_value(reason.as_bytes()) {
            w.error = Some(EncodeError::Reason);
        } else {
            // Three digits (checked above).
            let digits = [
                b'0' + (code / 100) as u8,
                b'0' + (code / 10 % 10) as u8,
                b'0' + (code % 10) as u8,
            ];
            w.push(&[
                v.as_bytes(),
                b" ",
                &digits,
                b" ",
                reason.as_bytes(),
                b"\r\n",
            ]);
        }
        w
    }

    fn empty(capacity: usize) -> HeadWriter {
        HeadWriter {
            out: Vec::with_capacity(capacity),
            error: None,
        }
    }

    fn push(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.out.extend_from_slice(p);
        }
    }

    /// Appends `name: value`. A bad name or value poisons the head (see [`HeadWriter::finish`]).
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut HeadWriter {
        if self.error.is_some() {
            return self;
        }
        if !is_token(name) {
            self.error = Some(EncodeError::HeaderName(shown(name)));
        } else if !is_field_value(value) {
            self.error = Some(EncodeError::HeaderValue(shown(name)));
        } else {
            self.out.reserve(name.len() + value.len() + 4);
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value);
            self.out.extend_from_slice(b"\r\n");
        }
        self
    }

    /// The first error so far, if any.
    pub fn error(&self) -> Option<&EncodeError> {
        self.error.as_ref()
    }

    /// The head so far, without the closing blank line, to be resumed for many requests that
    /// share it (a WebSocket-over-HTTP connection's fixed headers). Boxed to its length: it
    /// lives as long as the connection.
    pub fn into_prefix(self) -> Result<HeadPrefix, EncodeError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(HeadPrefix(self.out.into_boxed_slice())),
        }
    }

    /// Continues a head from a prefix this encoder validated.
    pub fn resume(prefix: &HeadPrefix, capacity: usize) -> HeadWriter {
        let mut out = Vec::with_capacity(prefix.0.len() + capacity);
        out.extend_from_slice(&prefix.0);
        HeadWriter { out, error: None }
    }

    /// The head with its closing blank line, or the first error (and no bytes at all).
    pub fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        match self.error {
            Some(e) => Err(e),
            None => {
                self.out.extend_from_slice(b"\r\n");
                Ok(self.out)
            }
        }
    }
}

/// The validated start of a head, made only by [`HeadWriter::into_prefix`].
#[derive(Debug, Clone)]
pub struct HeadPrefix(Box<[u8]>);

impl HeadPrefix {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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

/// A complete small response with a body and Content-Length, for holdfast's own errors and
/// answers. The extra headers are holdfast's own constants; should one ever be invalid, the
/// answer is a bare 500 rather than a broken head.
pub fn simple_response(
    code: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut w = HeadWriter::response(Version::Http11, code, "", 128 + body.len());
    w.header("Content-Type", content_type.as_bytes());
    w.header("Content-Length", body.len().to_string().as_bytes());
    for (name, value) in extra {
        w.header(name, value.as_bytes());
    }
    if close {
        w.header("Connection", b"close");
    }
    match w.finish() {
        Ok(mut out) => {
            out.extend_from_slice(body);
            out
        }
        Err(e) => {
            debug_assert!(false, "holdfast's own response head is invalid: {e}");
            tracing::error!("holdfast's own response head is invalid: {e}");
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_headers() {
        let mut w = HeadWriter::request("GET", "/a?b=1", 64);
        w.header("Host", b"example.com").header("X-T", b"a\tb");
        let out = w.finish().unwrap();
        assert_eq!(
            out,
            b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-T: a\tb\r\n\r\n"
        );
    }

    #[test]
    fn response_with_default_reason() {
        let out = HeadWriter::response(Version::Http11, 404, "", 0)
            .finish()
            .unwrap();
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\n\r\n");
    }

    #[test]
    fn line_breaks_anywhere_are_refused() {
        for bad in [
            &b"a\r\nX-Evil: 1"[..],
            b"a\nb",
            b"a\rb",
            b"a\0b",
            b"\x01",
            b"\x7f",
        ] {
            let mut w = HeadWriter::request("GET", "/", 0);
            w.header("X", bad);
            assert_eq!(w.finish(), Err(EncodeError::HeaderValue("X".into())));
        }
        for name in ["", "X Y", "X:", "X\r\nY", "Ä"] {
            let mut w = HeadWriter::request("GET", "/", 0);
            w.header(name, b"v");
            assert!(
                matches!(w.finish(), Err(EncodeError::HeaderName(_))),
                "{name:?}"
            );
        }
        let w = HeadWriter::response(Version::Http11, 200, "OK\r\nSet-Cookie: x", 0);
        assert_eq!(w.finish(), Err(EncodeError::Reason));
        let w = HeadWriter::request("GET", "/a HTTP/1.1\r\nHost: evil\r\n\r\nGET /b", 0);
        assert_eq!(w.finish(), Err(EncodeError::Target));
        let w = HeadWriter::request("GET /", "/", 0);
        assert!(matches!(w.finish(), Err(EncodeError::Method(_))));
        assert!(
            HeadWriter::response(Version::Http11, 42, "", 0)
                .finish()
                .is_err()
        );
    }

    #[test]
    fn the_first_error_wins_and_later_headers_are_ignored() {
        let mut w = HeadWriter::request("GET", "/", 0);
        w.header("Bad Name", b"v").header("X", b"\r\n");
        assert_eq!(w.error(), Some(&EncodeError::HeaderName("Bad Name".into())));
        assert!(w.finish().is_err());
    }

    #[test]
    fn error_names_are_bounded() {
        let long = "a b".repeat(100);
        let mut w = HeadWriter::request("GET", "/", 0);
        w.header(&long, b"v");
        match w.finish() {
            Err(EncodeError::HeaderName(n)) => assert_eq!(n.len(), NAME_IN_ERROR_MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_prefix_resumes_where_it_stopped() {
        let mut w = HeadWriter::request("POST", "/ws", 0);
        w.header("Connection-Id", b"abc");
        let prefix = w.into_prefix().unwrap();
        let mut again = HeadWriter::resume(&prefix, 16);
        again.header("Content-Length", b"0");
        assert_eq!(
            again.finish().unwrap(),
            b"POST /ws HTTP/1.1\r\nConnection-Id: abc\r\nContent-Length: 0\r\n\r\n"
        );
        let mut bad = HeadWriter::resume(&prefix, 0);
        bad.header("Meta-user", b"x\r\nEvil: 1");
        assert!(bad.finish().is_err());
    }

    #[test]
    fn obs_text_values_pass() {
        let mut w = HeadWriter::request("GET", "/caf\u{e9}", 0);
        w.header("X", "caf\u{e9}".as_bytes());
        assert!(w.finish().is_ok());
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
}
